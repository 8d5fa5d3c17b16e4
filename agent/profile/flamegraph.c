// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "profile/flamegraph.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "profile/folded.h"
#include "profile/intern.h"
#include "profile/profile.h"

#define WIDTH 1200.0
#define FRAME_H 16
#define PAD_TOP 40
#define PAD_SIDE 10
#define CHAR_W 6.6 /* average advance of 11px monospace text */
#define MIN_W 0.3  /* narrower boxes are not drawn */

struct node {
	char *name;
	unsigned long long value;
	struct node **kids;
	size_t nkids, cap;
};

static struct node *node_new(const char *name, size_t len)
{
	struct node *n = calloc(1, sizeof(*n));

	if (n && !(n->name = strndup(name, len))) {
		free(n);
		return NULL;
	}
	return n;
}

static void node_free(struct node *n)
{
	size_t i;

	for (i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n);
}

static struct node *child(struct node *parent, const char *name, size_t len)
{
	size_t i;
	struct node *n;

	for (i = 0; i < parent->nkids; i++)
		if (strlen(parent->kids[i]->name) == len &&
		    !memcmp(parent->kids[i]->name, name, len))
			return parent->kids[i];
	if (parent->nkids == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct node **k = realloc(parent->kids, cap * sizeof(*k));

		if (!k)
			return NULL;
		parent->kids = k;
		parent->cap = cap;
	}
	n = node_new(name, len);
	if (n)
		parent->kids[parent->nkids++] = n;
	return n;
}

static int add_line(struct node *root, const char *line, unsigned long long count)
{
	struct node *at = root;

	root->value += count;
	while (*line) {
		const char *end = strchr(line, ';');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		at = child(at, line, len);
		if (!at)
			return -ENOMEM;
		at->value += count;
		line += len + (end ? 1 : 0);
	}
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp((*(struct node *const *)a)->name, (*(struct node *const *)b)->name);
}

static int depth_of(struct node *n)
{
	int d = 0;
	size_t i;

	for (i = 0; i < n->nkids; i++) {
		int k = depth_of(n->kids[i]);

		if (k > d)
			d = k;
	}
	qsort(n->kids, n->nkids, sizeof(*n->kids), by_name); /* stable, alphabetical order */
	return d + 1;
}

static void xml_text(FILE *f, const char *s, size_t max)
{
	size_t i;

	for (i = 0; i < max && s[i]; i++) {
		switch (s[i]) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		default:
			fputc(s[i], f);
		}
	}
	if (i == max && s[i])
		fputs("..", f);
}

/* Warm colours, stable per name so the same function looks the same everywhere. */
static void colour(const char *name, int *r, int *g, int *b)
{
	uint32_t h = 2166136261u;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	*r = 205 + (int)(h % 50);
	*g = 80 + (int)((h >> 8) % 130);
	*b = 30 + (int)((h >> 16) % 40);
}

static void draw(FILE *f, const struct node *n, double x, int level, int top_y, double scale,
		 unsigned long long total)
{
	double w = (double)n->value * scale, kx = x;
	int y = top_y - level * FRAME_H, r, g, b;
	size_t i, fit;

	if (w < MIN_W)
		return;
	colour(n->name, &r, &g, &b);
	fputs("<g><title>", f);
	xml_text(f, n->name, SIZE_MAX);
	fprintf(f, " (%llu samples, %.2f%%)</title>", n->value,
		100.0 * (double)n->value / (double)total);
	fprintf(f,
		"<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"rgb(%d,%d,%d)\" "
		"rx=\"2\"/>",
		x, y, w, FRAME_H - 1, r, g, b);
	fit = w > 3 * CHAR_W ? (size_t)((w - 6) / CHAR_W) : 0;
	if (fit >= 3) {
		fprintf(f, "<text x=\"%.1f\" y=\"%d\">", x + 3, y + FRAME_H - 4);
		xml_text(f, n->name, fit - 2);
		fputs("</text>", f);
	}
	fputs("</g>\n", f);
	for (i = 0; i < n->nkids; i++) {
		draw(f, n->kids[i], kx, level + 1, top_y, scale, total);
		kx += (double)n->kids[i]->value * scale;
	}
}

int flamegraph_write(const struct profile *p, const char *title, FILE *f)
{
	struct intern lines;
	unsigned long long *counts, total;
	struct node *root = node_new("all", 3);
	size_t i;
	int err, depth, height;

	if (!root)
		return -ENOMEM;
	err = folded_lines(p, &lines, &counts);
	if (err) {
		node_free(root);
		return err;
	}
	for (i = 0; i < lines.n && !err; i++)
		err = add_line(root, intern_key(&lines, (uint32_t)i, NULL), counts[i]);
	free(counts);
	intern_free(&lines);
	if (err)
		goto out;
	depth = depth_of(root);
	height = PAD_TOP + depth * FRAME_H + 20;
	total = root->value ? root->value : 1;
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"viewBox=\"0 0 %d %d\">\n"
		"<style>text{font:11px monospace;fill:#000;pointer-events:none}"
		"rect:hover{stroke:#000;stroke-width:1}</style>\n"
		"<rect width=\"100%%\" height=\"100%%\" fill=\"#fdfbf5\"/>\n"
		"<text x=\"%d\" y=\"24\" style=\"font-size:16px\">",
		(int)WIDTH, height, (int)WIDTH, height, (int)(WIDTH / 2 - 200));
	xml_text(f, title, 120);
	fprintf(f, " — %llu samples</text>\n", root->value);
	draw(f, root, PAD_SIDE, 0, height - 20 - FRAME_H, (WIDTH - 2 * PAD_SIDE) / (double)total,
	     total);
	fputs("</svg>\n", f);
	err = ferror(f) ? -EIO : 0;
out:
	node_free(root);
	return err;
}
