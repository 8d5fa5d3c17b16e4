// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include "profile/pprof.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "profile/profile.h"
#include "profile.pb-c.h"

typedef Perftools__Profiles__Profile Profile;
typedef Perftools__Profiles__Sample Sample;
typedef Perftools__Profiles__Label Label;
typedef Perftools__Profiles__Location Location;
typedef Perftools__Profiles__Line Line;
typedef Perftools__Profiles__Function Function;
typedef Perftools__Profiles__ValueType ValueType;

#define LABELS_PER_SAMPLE 4

/* Everything the message points at, allocated in one place and freed together. */
struct arena {
	Sample *samples, **sample_ptrs;
	Label *labels, **label_ptrs;
	int64_t *values;
	uint64_t *loc_ids;
	Location *locs, **loc_ptrs;
	Line *lines, **line_ptrs;
	Function *funcs, **func_ptrs;
	char **strings;
};

static void arena_free(struct arena *a)
{
	free(a->samples);
	free(a->sample_ptrs);
	free(a->labels);
	free(a->label_ptrs);
	free(a->values);
	free(a->loc_ids);
	free(a->locs);
	free(a->loc_ptrs);
	free(a->lines);
	free(a->line_ptrs);
	free(a->funcs);
	free(a->func_ptrs);
	free(a->strings);
}

static void label_num(Label *l, int64_t key, int64_t num)
{
	perftools__profiles__label__init(l);
	l->key = key;
	l->num = num;
}

static void label_str(Label *l, int64_t key, int64_t str)
{
	perftools__profiles__label__init(l);
	l->key = key;
	l->str = str;
}

static int fill_samples(struct profile *p, struct arena *a, int64_t keys[LABELS_PER_SAMPLE])
{
	size_t n = p->samples.n, i, nlocs = 0, li = 0;

	for (i = 0; i < n; i++)
		nlocs += profile_sample_at(p, (uint32_t)i)->nlocs;
	a->samples = calloc(n ? n : 1, sizeof(*a->samples));
	a->sample_ptrs = calloc(n ? n : 1, sizeof(*a->sample_ptrs));
	a->labels = calloc(n * LABELS_PER_SAMPLE + 1, sizeof(*a->labels));
	a->label_ptrs = calloc(n * LABELS_PER_SAMPLE + 1, sizeof(*a->label_ptrs));
	a->values = calloc(n * 2 + 1, sizeof(*a->values));
	a->loc_ids = calloc(nlocs + 1, sizeof(*a->loc_ids));
	if (!a->samples || !a->sample_ptrs || !a->labels || !a->label_ptrs || !a->values ||
	    !a->loc_ids)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct profile_sample *ps = profile_sample_at(p, (uint32_t)i);
		Sample *s = &a->samples[i];
		Label *l = &a->labels[i * LABELS_PER_SAMPLE];
		uint32_t k;

		perftools__profiles__sample__init(s);
		s->n_location_id = ps->nlocs;
		s->location_id = &a->loc_ids[li];
		for (k = 0; k < ps->nlocs; k++)
			a->loc_ids[li++] = (uint64_t)ps->locs[k] + 1; /* ids are dense from 1 */
		s->n_value = 2;
		s->value = &a->values[i * 2];
		s->value[0] = (int64_t)p->counts[i];
		s->value[1] = (int64_t)(p->weighted ? p->weights[i] : p->counts[i] * p->period_ns);
		label_num(&l[0], keys[0], ps->pid);
		label_num(&l[1], keys[1], ps->tid);
		label_str(&l[2], keys[2], ps->thread);
		label_str(&l[3], keys[3], ps->process);
		s->n_label = LABELS_PER_SAMPLE;
		s->label = &a->label_ptrs[i * LABELS_PER_SAMPLE];
		for (k = 0; k < LABELS_PER_SAMPLE; k++)
			s->label[k] = &l[k];
		a->sample_ptrs[i] = s;
	}
	return 0;
}

static int fill_locations(const struct profile *p, struct arena *a)
{
	size_t n = p->locations.n, i;

	a->locs = calloc(n + 1, sizeof(*a->locs));
	a->loc_ptrs = calloc(n + 1, sizeof(*a->loc_ptrs));
	a->lines = calloc(n + 1, sizeof(*a->lines));
	a->line_ptrs = calloc(n + 1, sizeof(*a->line_ptrs));
	if (!a->locs || !a->loc_ptrs || !a->lines || !a->line_ptrs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct profile_location *pl = intern_key(&p->locations, (uint32_t)i, NULL);

		perftools__profiles__location__init(&a->locs[i]);
		perftools__profiles__line__init(&a->lines[i]);
		a->lines[i].function_id = (uint64_t)pl->function + 1;
		a->lines[i].line = pl->line;
		a->line_ptrs[i] = &a->lines[i];
		a->locs[i].id = i + 1;
		a->locs[i].n_line = 1;
		a->locs[i].line = &a->line_ptrs[i];
		a->loc_ptrs[i] = &a->locs[i];
	}
	return 0;
}

static int fill_functions(const struct profile *p, struct arena *a)
{
	size_t n = p->functions.n, i;

	a->funcs = calloc(n + 1, sizeof(*a->funcs));
	a->func_ptrs = calloc(n + 1, sizeof(*a->func_ptrs));
	if (!a->funcs || !a->func_ptrs)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const struct profile_function *pf = intern_key(&p->functions, (uint32_t)i, NULL);

		perftools__profiles__function__init(&a->funcs[i]);
		a->funcs[i].id = i + 1;
		a->funcs[i].name = pf->name;
		a->funcs[i].system_name = pf->name;
		a->funcs[i].filename = pf->file;
		a->funcs[i].start_line = pf->start_line;
		a->func_ptrs[i] = &a->funcs[i];
	}
	return 0;
}

static int gzip_bytes(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream z = { 0 };
	size_t cap = compressBound(len) + 64;
	uint8_t *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	/* windowBits 15 + 16: a gzip header and trailer rather than zlib's */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
	    Z_OK) {
		free(buf);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(buf);
		return -EIO;
	}
	*out_len = z.total_out;
	deflateEnd(&z);
	*out = buf;
	return 0;
}

int pprof_encode(const struct profile *cp, const char *const *comments, size_t ncomments,
		 uint8_t **out, size_t *len)
{
	struct profile *p = (struct profile *)cp; /* interning the few names below only */
	Profile prof = PERFTOOLS__PROFILES__PROFILE__INIT;
	ValueType st[2] = { PERFTOOLS__PROFILES__VALUE_TYPE__INIT,
			    PERFTOOLS__PROFILES__VALUE_TYPE__INIT };
	ValueType *st_ptrs[2] = { &st[0], &st[1] };
	ValueType period = PERFTOOLS__PROFILES__VALUE_TYPE__INIT;
	int64_t keys[LABELS_PER_SAMPLE], comment_ids[PPROF_MAX_COMMENTS];
	struct arena a = { 0 };
	uint8_t *packed = NULL;
	size_t i, n;
	int err = -ENOMEM;

	/* Sample type names must not contain '-' (pprof convention). */
	st[0].type = profile_string(p, p->types[0] ? p->types[0] : "samples");
	st[0].unit = profile_string(p, p->types[1] ? p->types[1] : "count");
	st[1].type = profile_string(p, p->types[2] ? p->types[2] : "cpu");
	st[1].unit = profile_string(p, p->types[3] ? p->types[3] : "nanoseconds");
	period.type = st[1].type;
	period.unit = st[1].unit;
	keys[0] = profile_string(p, "pid");
	keys[1] = profile_string(p, "thread_id");
	keys[2] = profile_string(p, "thread_name");
	keys[3] = profile_string(p, "process_name");
	if (ncomments > PPROF_MAX_COMMENTS)
		return -EINVAL;
	for (i = 0; i < ncomments; i++)
		if ((comment_ids[i] = profile_string(p, comments[i])) < 0)
			goto cleanup;
	if (st[0].type < 0 || st[1].unit < 0 || keys[3] < 0 || fill_samples(p, &a, keys) ||
	    fill_locations(p, &a) || fill_functions(p, &a))
		goto cleanup;
	n = p->strings.n;
	a.strings = calloc(n, sizeof(*a.strings));
	if (!a.strings)
		goto cleanup;
	for (i = 0; i < n; i++)
		a.strings[i] = (char *)intern_key(&p->strings, (uint32_t)i, NULL);
	prof.n_sample_type = 2;
	prof.sample_type = st_ptrs;
	prof.n_sample = p->samples.n;
	prof.sample = a.sample_ptrs;
	prof.n_location = p->locations.n;
	prof.location = a.loc_ptrs;
	prof.n_function = p->functions.n;
	prof.function = a.func_ptrs;
	prof.n_string_table = n;
	prof.string_table = a.strings;
	prof.time_nanos = (int64_t)p->start_ns;
	prof.duration_nanos = (int64_t)p->duration_ns;
	prof.period_type = &period;
	prof.period = (int64_t)p->period_ns;
	prof.default_sample_type = st[1].type;
	prof.n_comment = ncomments;
	prof.comment = ncomments ? comment_ids : NULL;
	packed = malloc(perftools__profiles__profile__get_packed_size(&prof) + 1);
	if (!packed)
		goto cleanup;
	err = gzip_bytes(packed, perftools__profiles__profile__pack(&prof, packed), out, len);
cleanup:
	free(packed);
	arena_free(&a);
	return err;
}
