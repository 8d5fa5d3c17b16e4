// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* See config.h. The table below is the only list of settings. */
#include "daemon/config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/files.h"
#include "gc/gctrace.h"
#include "base/log.h"

enum kind {
	K_INT,	  /* an integer in [min, max] */
	K_BYTES,  /* an integer with an optional K, M or G suffix (powers of 1024) */
	K_DOUBLE, /* a number in [min, max] */
	K_STR,	  /* text that fits the field */
	K_BOOL,	  /* true/false, yes/no, on/off, 1/0 */
	K_CHOICE, /* one of the words in `choices` */
};

struct setting {
	const char *key;
	enum kind kind;
	size_t off, size;
	double min, max;
	const char *choices; /* K_CHOICE: space-separated */
	const char *help;
};

#define FIELD(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)

/* clang-format off */
static const struct setting settings[] = {
	{ "frequency", K_INT, FIELD(frequency), 1, 1000, NULL, "samples per second per CPU (99)" },
	{ "interval", K_DOUBLE, FIELD(interval), 1, 3600, NULL, "export interval in seconds (15)" },
	{ "service-env", K_STR, FIELD(service_env), 0, 0, NULL,
	  "target environment keys that name its service (PYROMETER_SERVICE)" },
	{ "store-enabled", K_CHOICE, FIELD(store_enabled), 0, 0, "auto true false",
	  "write the local store: auto (when pyroscope is not set), true or false (auto)" },
	{ "store", K_STR, FIELD(store), 0, 0, NULL, "local store (/var/lib/pyrometer/profiles)" },
	{ "store-cap", K_BYTES, FIELD(store_cap), 4096, 1e15, NULL, "store byte cap (1G)" },
	{ "store-max-age", K_INT, FIELD(store_max_age), 1, 1e9, NULL,
	  "remove stored profiles older than this many seconds (604800)" },
	{ "pyroscope", K_STR, FIELD(pyroscope), 0, 0, NULL, "Grafana Pyroscope base URL (off)" },
	{ "pyroscope-api", K_CHOICE, FIELD(pyroscope_api), 0, 0, "push ingest", "push or ingest (push)" },
	{ "basic-auth-user", K_STR, FIELD(basic_auth_user), 0, 0, NULL, "basic auth user" },
	{ "password-file", K_STR, FIELD(password_file), 0, 0, NULL,
	  "basic auth password file (mode 0600 or stricter)" },
	{ "token-file", K_STR, FIELD(token_file), 0, 0, NULL, "bearer token file (mode 0600 or stricter)" },
	{ "tenant", K_STR, FIELD(tenant), 0, 0, NULL, "X-Scope-OrgID" },
	{ "spool", K_STR, FIELD(spool), 0, 0, NULL, "undelivered profiles (/var/lib/pyrometer/spool)" },
	{ "spool-cap", K_BYTES, FIELD(spool_cap), 1024, 1e15, NULL, "spool byte cap (256M)" },
	{ "backoff-max", K_DOUBLE, FIELD(backoff_max), 0.1, 86400, NULL,
	  "longest wait between delivery attempts, seconds (300)" },
	{ "gc", K_BOOL, FIELD(gc), 0, 0, NULL, "trace GC pauses (true)" },
	{ "off-cpu", K_BOOL, FIELD(off_cpu), 0, 0, NULL,
	  "time off the CPU with stacks: off_cpu profiles, GIL wait metrics (true)" },
	{ "imports", K_BOOL, FIELD(imports), 0, 0, NULL,
	  "start-up import profiles and python_import_seconds (true; a restart applies it)" },
	{ "import-startup", K_DOUBLE, FIELD(import_startup), 0.1, 86400, NULL,
	  "seconds from a process's start whose imports form its start-up profile (30)" },
	{ "gc-threshold-ms", K_DOUBLE, FIELD(gc_threshold_ms), 0, 60000, NULL,
	  "pauses at least this long are logged with their stack (100)" },
	{ "gc-linger", K_DOUBLE, FIELD(gc_linger), 0, 86400, NULL,
	  "seconds a binary's GC probes stay after its last process exits (600)" },
	{ "metrics-addr", K_STR, FIELD(metrics_addr), 0, 0, NULL,
	  "Prometheus endpoint HOST:PORT, or off (127.0.0.1:9464)" },
	{ "alertmanager", K_STR, FIELD(alertmanager), 0, 0, NULL, "Alertmanager base URL (off)" },
	{ "alert-pause", K_DOUBLE, FIELD(alert_pause), 0, 3600, NULL,
	  "alert on a single GC pause this long, seconds (0.5; 0 off)" },
	{ "alert-p99", K_DOUBLE, FIELD(alert_p99), 0, 3600, NULL,
	  "alert when the windowed p99 GC pause is this long, seconds (0.1; 0 off)" },
	{ "alert-window", K_DOUBLE, FIELD(alert_window), 1, 86400, NULL, "p99 window, seconds (60)" },
	{ "alert-resend", K_DOUBLE, FIELD(alert_resend), 1, 86400, NULL,
	  "re-send firing alerts every this many seconds (30)" },
	{ "calls-window", K_DOUBLE, FIELD(calls_window), 0, 60, NULL,
	  "trace every Python function call for this many seconds each calls-every (0: off)" },
	{ "calls-every", K_DOUBLE, FIELD(calls_every), 1, 86400, NULL,
	  "seconds from one call window to the next (600)" },
	{ "calls-budget", K_DOUBLE, FIELD(calls_budget), 0.0001, 10, NULL,
	  "call windows may cost this share of one CPU on average, percent (1)" },
	{ "log-level", K_CHOICE, FIELD(log_level), 0, 0, "error warn info debug",
	  "error, warn, info or debug (info)" },
};
/* clang-format on */

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->frequency = 99;
	c->interval = 15;
	snprintf(c->service_env, sizeof(c->service_env), "PYROMETER_SERVICE");
	snprintf(c->store_enabled, sizeof(c->store_enabled), "auto");
	snprintf(c->store, sizeof(c->store), "/var/lib/pyrometer/profiles");
	c->store_cap = 1ll << 30;
	c->store_max_age = 7 * 86400;
	snprintf(c->pyroscope_api, sizeof(c->pyroscope_api), "push");
	snprintf(c->spool, sizeof(c->spool), "/var/lib/pyrometer/spool");
	c->spool_cap = 256ll << 20;
	c->backoff_max = 300;
	c->gc = true;
	c->off_cpu = true;
	c->imports = true;
	c->import_startup = 30;
	c->gc_threshold_ms = 100;
	c->gc_linger = GC_LINGER_NS / 1e9;
	snprintf(c->metrics_addr, sizeof(c->metrics_addr), "127.0.0.1:9464");
	c->alert_pause = 0.5;
	c->alert_p99 = 0.1;
	c->alert_window = 60;
	c->alert_resend = 30;
	c->calls_every = 600;
	c->calls_budget = 1;
	snprintf(c->log_level, sizeof(c->log_level), "info");
}

static const struct setting *find(const char *key)
{
	for (size_t i = 0; i < NSETTINGS; i++)
		if (!strcmp(settings[i].key, key))
			return &settings[i];
	return NULL;
}

/* Is word one of the space-separated words? (An empty word is not: strstr finds "" at
 * every place, and the loop would not move.) */
static bool word_in(const char *word, const char *words)
{
	size_t n = strlen(word);

	if (!n)
		return false;
	for (const char *p = words; (p = strstr(p, word)); p += n)
		if ((p == words || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
			return true;
	return false;
}

/* Parses value into c's field; on error says why in why. */
static int set(struct config *c, const struct setting *s, const char *value, char *why, size_t wlen)
{
	void *field = (char *)c + s->off;
	char *end;
	double d;

	switch (s->kind) {
	case K_STR:
		if (strlen(value) >= s->size) {
			snprintf(why, wlen, "longer than %zu bytes", s->size - 1);
			return -EINVAL;
		}
		snprintf(field, s->size, "%s", value);
		return 0;
	case K_CHOICE:
		if (!word_in(value, s->choices)) {
			snprintf(why, wlen, "must be one of: %s", s->choices);
			return -EINVAL;
		}
		snprintf(field, s->size, "%s", value);
		return 0;
	case K_BOOL:
		if (!strcasecmp(value, "true") || !strcasecmp(value, "yes") ||
		    !strcasecmp(value, "on") || !strcmp(value, "1"))
			*(bool *)field = true;
		else if (!strcasecmp(value, "false") || !strcasecmp(value, "no") ||
			 !strcasecmp(value, "off") || !strcmp(value, "0"))
			*(bool *)field = false;
		else {
			snprintf(why, wlen, "must be true or false");
			return -EINVAL;
		}
		return 0;
	default:
		break;
	}
	errno = 0;
	d = strtod(value, &end);
	if (s->kind == K_BYTES && end != value && *end && !end[1]) {
		const char *units = "KMG";
		const char *u = strchr(units, *end);

		if (u) {
			d *= pow(1024, (double)(u - units + 1));
			end++;
		}
	}
	if (end == value || *end || errno || !isfinite(d) || d < s->min || d > s->max ||
	    (s->kind != K_DOUBLE && d != floor(d))) {
		snprintf(why, wlen, "must be %s from %.16g to %.16g%s",
			 s->kind == K_DOUBLE ? "a number" : "a whole number", s->min, s->max,
			 s->kind == K_BYTES ? " (K, M, G suffixes allowed)" : "");
		return -EINVAL;
	}
	if (s->kind == K_DOUBLE)
		*(double *)field = d;
	else
		*(int64_t *)field = (int64_t)d;
	return 0;
}

/* ---- the file ---- */

struct ini_state {
	struct config *c;
	char first_error[512]; /* the first error, without its line (libinih returns that) */
	bool seen[NSETTINGS];
};

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	const struct setting *s;
	char why[256];

	if (st->first_error[0])
		return 1; /* only the first error is reported */
	if (section[0] && strcmp(section, "pyrometer")) {
		snprintf(st->first_error, sizeof(st->first_error),
			 "unknown section [%s] (settings go before any section or under "
			 "[pyrometer])",
			 section);
		return 0;
	}
	s = find(name);
	if (!s) {
		snprintf(st->first_error, sizeof(st->first_error), "unknown key '%s'", name);
		return 0;
	}
	/* libinih hands an indented line to the key before it as a second value: refused like
	 * any key given twice, rather than the earlier value silently replaced. */
	if (st->seen[s - settings]) {
		snprintf(st->first_error, sizeof(st->first_error),
			 "'%s' is set twice (an indented line continues the key above it)", name);
		return 0;
	}
	st->seen[s - settings] = true;
	if (set(st->c, s, value, why, sizeof(why))) {
		snprintf(st->first_error, sizeof(st->first_error), "%s: %s", name, why);
		return 0;
	}
	return 1;
}

/* A config file is small; anything larger (or /dev/zero) is a mistake, not a config. */
#define CONFIG_MAX (1 << 20)

int config_load_text(struct config *c, const char *name, const char *text)
{
	struct config next = *c;
	struct ini_state st = { .c = &next };
	int line = ini_parse_string(text, on_ini, &st);

	if (line < 0) {
		log_error("config: cannot parse %s", name);
		return -EINVAL;
	}
	if (line > 0) {
		log_error("config: %s:%d: %s", name, line,
			  st.first_error[0] ? st.first_error : "not a 'key = value' line");
		return -EINVAL;
	}
	*c = next;
	return 0;
}

int config_load(struct config *c, const char *path)
{
	unsigned char *text = NULL;
	size_t len;
	int err = files_read_regular(path, CONFIG_MAX, true, &text, &len);

	if (err) {
		log_error("config: cannot read %s: %s", path, files_why(err));
		return -EINVAL;
	}
	if (memchr(text, '\0', len)) {
		log_error("config: %s is not text (it holds a NUL byte)", path);
		free(text);
		return -EINVAL;
	}
	err = config_load_text(c, path, (const char *)text);
	free(text);
	return err;
}

/* ---- flags ---- */

const char config_usage[] =
	"usage: pyrometer run [-c FILE] [--check-config] [--KEY VALUE]... [-F HZ] [-v]\n"
	"\n"
	"The daemon: profiles every Python process on this host and, every interval, writes\n"
	"one CPU profile (pprof) per service to the local store and/or Grafana Pyroscope;\n"
	"traces GC pauses; serves Prometheus metrics; sends alerts to Alertmanager; and, when\n"
	"calls-window is set, traces function calls in short windows (calls profiles).\n"
	"\n"
	"  -c, --config FILE   read settings from FILE (INI: key = value, the keys below)\n"
	"      --check-config  check the settings, print them, and exit\n"
	"  -F HZ               the same as --frequency HZ\n"
	"  -v                  verbose (repeat for debug output)\n"
	"  -h, --help          this help\n"
	"\n"
	"Settings (each also a config file key; flags override the file):\n";

static void usage(FILE *f)
{
	fputs(config_usage, f);
	for (size_t i = 0; i < NSETTINGS; i++)
		fprintf(f, "  --%-18s %s\n", settings[i].key, settings[i].help);
}

enum {
	OPT_CHECK = 1000,
	OPT_SETTING = 2000
};

int config_flags(struct config *c, int argc, char **argv, const char **config_path,
		 bool *check_only)
{
	struct option opts[NSETTINGS + 5] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
	};
	char why[256];
	int opt;

	for (size_t i = 0; i < NSETTINGS; i++)
		opts[4 + i] = (struct option){ settings[i].key, required_argument, NULL,
					       OPT_SETTING + (int)i };
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:F:vh", opts, NULL)) != -1) {
		const struct setting *s = opt >= OPT_SETTING ? &settings[opt - OPT_SETTING] : NULL;

		if (opt == 'F')
			s = find("frequency");
		if (s) {
			if (set(c, s, optarg, why, sizeof(why))) {
				log_error("run: --%s %s: %s", s->key, optarg, why);
				return -EINVAL;
			}
			continue;
		}
		switch (opt) {
		case 'c':
			*config_path = optarg;
			break;
		case OPT_CHECK:
			*check_only = true;
			break;
		case 'v':
			snprintf(c->log_level, sizeof(c->log_level), "debug");
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("run: unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

bool config_store_on(const struct config *c)
{
	return !strcmp(c->store_enabled, "true") ||
	       (!strcmp(c->store_enabled, "auto") && !c->pyroscope[0]);
}

/* Text that goes into HTTP headers, URLs or labels: no control characters, which would
 * let a value start a header or a log line of its own. */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* An http:// or https:// URL with a host, nothing unprintable, and no space. */
static int check_url(const char *key, const char *url)
{
	const char *host = !strncmp(url, "http://", 7)	  ? url + 7
			   : !strncmp(url, "https://", 8) ? url + 8
							  : NULL;
	const char *at, *end;

	if (!host || !printable(url) || strchr(url, ' ')) {
		log_error("config: %s must be an http:// or https:// URL without spaces or control "
			  "characters",
			  key);
		return -EINVAL;
	}
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	if (at)
		host = at + 1; /* user:password@host */
	if (host == end || *host == ':') {
		log_error("config: %s has no host", key);
		return -EINVAL;
	}
	return 0;
}

/* "off", or HOST:PORT with a port from 1 to 65535. */
static int check_listen_addr(const char *key, const char *addr)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	long port;

	if (!strcmp(addr, "off"))
		return 0;
	errno = 0;
	port = colon && colon[1] >= '0' && colon[1] <= '9' ? strtol(colon + 1, &end, 10) : 0;
	if (!colon || errno || *end || port < 1 || port > 65535 || !printable(addr)) {
		log_error("config: %s must be off or HOST:PORT with a port from 1 to 65535", key);
		return -EINVAL;
	}
	return 0;
}

/* The secret files are checked at start (and by --check-config) as they will be read. */
static int check_secret_file(const char *key, const char *path)
{
	unsigned char *text = NULL;
	size_t len = 0;
	int err;

	if (!path[0])
		return 0;
	err = files_read_private(path, SECRET_FILE_MAX, &text, &len);
	if (text)
		explicit_bzero(text, len);
	free(text);
	if (err) {
		log_error("config: %s %s: %s", key, path, files_why(err));
		return -EINVAL;
	}
	return 0;
}

void config_redact_url(const char *url, char *out, size_t len)
{
	const char *host = strstr(url, "://"), *at, *colon, *end;

	host = host ? host + 3 : url;
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
	if (!colon) {
		snprintf(out, len, "%s", url);
		return;
	}
	snprintf(out, len, "%.*s:***%s", (int)(colon - url), url, at);
}

int config_check(const struct config *c)
{
	if (c->pyroscope[0] && check_url("pyroscope", c->pyroscope))
		return -EINVAL;
	if (!printable(c->tenant) || !printable(c->basic_auth_user) || !printable(c->service_env)) {
		log_error("config: tenant, basic-auth-user and service-env must not hold control "
			  "characters");
		return -EINVAL;
	}
	if (check_listen_addr("metrics-addr", c->metrics_addr) ||
	    check_secret_file("token-file", c->token_file) ||
	    check_secret_file("password-file", c->password_file))
		return -EINVAL;
	if (!c->pyroscope[0] &&
	    (c->basic_auth_user[0] || c->password_file[0] || c->token_file[0] || c->tenant[0])) {
		log_error("config: basic-auth-user, password-file, token-file and tenant need "
			  "pyroscope");
		return -EINVAL;
	}
	if (!c->basic_auth_user[0] != !c->password_file[0] ||
	    (c->basic_auth_user[0] && c->token_file[0])) {
		log_error("config: basic auth needs basic-auth-user and password-file, and "
			  "excludes token-file");
		return -EINVAL;
	}
	if (c->calls_window > 0 && c->calls_window >= c->calls_every) {
		log_error("config: calls-window (%g s) must be shorter than calls-every (%g s)",
			  c->calls_window, c->calls_every);
		return -EINVAL;
	}
	if (c->alertmanager[0] && check_url("alertmanager", c->alertmanager))
		return -EINVAL;
	return 0;
}

void config_print(const struct config *c, FILE *f)
{
	for (size_t i = 0; i < NSETTINGS; i++) {
		const struct setting *s = &settings[i];
		const void *field = (const char *)c + s->off;

		fprintf(f, "%s = ", s->key);
		switch (s->kind) {
		case K_STR:
		case K_CHOICE:
			if (!strcmp(s->key, "pyroscope") || !strcmp(s->key, "alertmanager")) {
				char url[sizeof(c->pyroscope)];

				config_redact_url(field, url, sizeof(url));
				fprintf(f, "%s\n", url);
				break;
			}
			fprintf(f, "%s\n", (const char *)field);
			break;
		case K_BOOL:
			fprintf(f, "%s\n", *(const bool *)field ? "true" : "false");
			break;
		case K_DOUBLE:
			fprintf(f, "%g\n", *(const double *)field);
			break;
		default:
			fprintf(f, "%lld\n", (long long)*(const int64_t *)field);
			break;
		}
	}
}

void config_apply_log_level(const struct config *c)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(c->log_level, names[i]))
			log_set_level((enum log_level)(LOG_LVL_ERROR + i));
}
