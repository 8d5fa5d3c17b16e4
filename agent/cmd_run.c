// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* pyrometer run: the daemon. Samples every Python process on the host, and at the end of
 * each interval encodes one pprof per service and hands it to the sinks: the local store
 * (the default) and/or Grafana Pyroscope through the shipper (queue, spool, retries). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "commands.h"
#include "cpuprof.h"
#include "export.h"
#include "log.h"
#include "pprof.h"
#include "privs.h"
#include "profile.h"
#include "pyroscope.h"
#include "shipper.h"
#include "spool.h"
#include "store.h"
#include "targets.h"
#include "text.h"

#define DRAIN_MS 200
#define MAX_SERVICES 256 /* per interval; further services share "other" */

static const char run_usage[] =
	"usage: pyrometer run [options]\n"
	"\n"
	"Profiles every Python process on this host and, every interval, writes one CPU profile\n"
	"(pprof) per service to the local store, or ships it to Grafana Pyroscope.\n"
	"\n"
	"  -F, --frequency HZ        samples per second per CPU (default 99)\n"
	"      --interval SECONDS    export interval (default 15)\n"
	"      --store DIR           local profile store (default /var/lib/pyrometer/profiles,\n"
	"                            used when no --pyroscope is given)\n"
	"      --store-cap BYTES     remove the oldest profiles beyond this (default 1 GiB)\n"
	"      --store-max-age SECS  remove profiles older than this (default 7 days)\n"
	"      --pyroscope URL       ship to Grafana Pyroscope at URL (push API)\n"
	"      --pyroscope-api API   push (default) or ingest\n"
	"      --basic-auth-user U   basic auth user, with --password-file\n"
	"      --password-file FILE  basic auth password (file mode 0600 or stricter)\n"
	"      --token-file FILE     bearer token (file mode 0600 or stricter)\n"
	"      --tenant ID           X-Scope-OrgID header\n"
	"      --spool DIR           profiles not yet delivered (default "
	"/var/lib/pyrometer/spool)\n"
	"      --spool-cap BYTES     drop the oldest undelivered profiles beyond this (default\n"
	"                            256 MiB)\n"
	"      --backoff-max SECS    longest wait between delivery attempts (default 300)\n"
	"  -v                        verbose (repeat for debug output)\n"
	"  -h, --help                this help\n";

struct service_prof {
	char name[EXPORT_LABEL_VALUE];
	struct profile prof;
};

struct run {
	int freq;
	double interval;
	const char *store_dir, *spool_dir;
	bool store_set;
	uint64_t store_cap, store_max_age, spool_cap;
	double backoff_max;
	struct pyroscope_opts pyro;

	char host[EXPORT_LABEL_VALUE];
	struct cpuprof *cpu;
	struct store *store;
	struct spool *spool;
	struct pyroscope *sink;
	struct shipper *shipper;
	struct service_prof *svc;
	size_t nsvc;
	uint64_t interval_start_ns; /* CLOCK_REALTIME */
	uint64_t interval_start_mono;
	uint64_t profiles;
};

/* ---- options ---- */

enum {
	OPT_INTERVAL = 256,
	OPT_STORE,
	OPT_STORE_CAP,
	OPT_STORE_AGE,
	OPT_PYROSCOPE,
	OPT_API,
	OPT_USER,
	OPT_PASSWORD,
	OPT_TOKEN,
	OPT_TENANT,
	OPT_SPOOL,
	OPT_SPOOL_CAP,
	OPT_BACKOFF,
};

static int num(const char *what, const char *s, double min, double max, double *out)
{
	return cli_number("run", what, s, min, max, out);
}

static int parse_args(int argc, char **argv, struct run *r)
{
	static const struct option opts[] = {
		{ "frequency", required_argument, NULL, 'F' },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "store", required_argument, NULL, OPT_STORE },
		{ "store-cap", required_argument, NULL, OPT_STORE_CAP },
		{ "store-max-age", required_argument, NULL, OPT_STORE_AGE },
		{ "pyroscope", required_argument, NULL, OPT_PYROSCOPE },
		{ "pyroscope-api", required_argument, NULL, OPT_API },
		{ "basic-auth-user", required_argument, NULL, OPT_USER },
		{ "password-file", required_argument, NULL, OPT_PASSWORD },
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "tenant", required_argument, NULL, OPT_TENANT },
		{ "spool", required_argument, NULL, OPT_SPOOL },
		{ "spool-cap", required_argument, NULL, OPT_SPOOL_CAP },
		{ "backoff-max", required_argument, NULL, OPT_BACKOFF },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	double v;
	int opt, err;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "F:vh", opts, NULL)) != -1) {
		switch (opt) {
		case 'F':
			if (num("the frequency (-F)", optarg, 1, 1000, &v) || v != floor(v))
				return -EINVAL;
			r->freq = (int)v;
			break;
		case OPT_INTERVAL:
			if (num("--interval", optarg, 1, 3600, &r->interval))
				return -EINVAL;
			break;
		case OPT_STORE:
			r->store_dir = optarg;
			r->store_set = true;
			break;
		case OPT_STORE_CAP:
			if (num("--store-cap", optarg, 4096, 1e15, &v))
				return -EINVAL;
			r->store_cap = (uint64_t)v;
			break;
		case OPT_STORE_AGE:
			if (num("--store-max-age", optarg, 1, 1e9, &v))
				return -EINVAL;
			r->store_max_age = (uint64_t)v;
			break;
		case OPT_PYROSCOPE:
			r->pyro.url = optarg;
			break;
		case OPT_API:
			if (!strcmp(optarg, "push"))
				r->pyro.api = PYROSCOPE_PUSH;
			else if (!strcmp(optarg, "ingest"))
				r->pyro.api = PYROSCOPE_INGEST;
			else {
				log_error("run: --pyroscope-api must be push or ingest, not '%s'",
					  optarg);
				return -EINVAL;
			}
			break;
		case OPT_USER:
			r->pyro.basic_user = optarg;
			break;
		case OPT_PASSWORD:
			r->pyro.password_file = optarg;
			break;
		case OPT_TOKEN:
			r->pyro.token_file = optarg;
			break;
		case OPT_TENANT:
			r->pyro.tenant = optarg;
			break;
		case OPT_SPOOL:
			r->spool_dir = optarg;
			break;
		case OPT_SPOOL_CAP:
			if (num("--spool-cap", optarg, 1024, 1e15, &v))
				return -EINVAL;
			r->spool_cap = (uint64_t)v;
			break;
		case OPT_BACKOFF:
			if (num("--backoff-max", optarg, 0.1, 86400, &r->backoff_max))
				return -EINVAL;
			break;
		default:
			if ((err = cli_common_option(opt, run_usage)))
				return err;
			break;
		}
	}
	if (cli_no_operands(argc, argv, "run"))
		return -EINVAL;
	if (!r->pyro.url &&
	    (r->pyro.basic_user || r->pyro.password_file || r->pyro.token_file || r->pyro.tenant)) {
		log_error("run: Pyroscope options need --pyroscope URL");
		return -EINVAL;
	}
	return 0;
}

/* ---- per-service profiles ---- */

static struct profile *profile_for(const struct py_process *p, void *ctx)
{
	struct run *r = ctx;
	const char *name = p && p->service[0] ? p->service : "unknown";
	struct service_prof *n;
	size_t i;

	for (int pass = 0; pass < 2; pass++) {
		for (i = 0; i < r->nsvc; i++)
			if (!strcmp(r->svc[i].name, name))
				return &r->svc[i].prof;
		if (r->nsvc < MAX_SERVICES - 1)
			break;
		name = "other"; /* the last slot is for every service beyond the others */
	}
	n = realloc(r->svc, (r->nsvc + 1) * sizeof(*n));
	if (!n)
		return NULL;
	r->svc = n;
	n = &r->svc[r->nsvc];
	if (profile_init(&n->prof, 1000000000ull / r->freq))
		return NULL;
	r->nsvc++;
	snprintf(n->name, sizeof(n->name), "%s", name);
	text_sanitize(n->name);
	return &n->prof;
}

static void add_label(struct export_profile *e, const char *name, const char *value)
{
	struct export_label *l;

	if (e->n_labels == EXPORT_MAX_LABELS)
		return;
	l = &e->labels[e->n_labels++];
	snprintf(l->name, sizeof(l->name), "%s", name);
	snprintf(l->value, sizeof(l->value), "%s", value);
	text_sanitize(l->value);
}

/* Encodes one service's interval: labels go into the pprof as comments too, since pprof
 * has no other place for profile-wide labels. */
static int encode(struct run *r, struct service_prof *sp, uint64_t until_ns,
		  struct export_profile *e)
{
	char comments[EXPORT_MAX_LABELS + 1][EXPORT_LABEL_NAME + EXPORT_LABEL_VALUE + 2];
	const char *cptr[EXPORT_MAX_LABELS + 1];
	unsigned i;

	memset(e, 0, sizeof(*e));
	export_new_id(e->id);
	e->from_ns = r->interval_start_ns;
	e->until_ns = until_ns;
	add_label(e, "service_name", sp->name);
	add_label(e, "host", r->host);
	for (i = 0; i < e->n_labels; i++) {
		snprintf(comments[i], sizeof(comments[i]), "%s=%s", e->labels[i].name,
			 e->labels[i].value);
		cptr[i] = comments[i];
	}
	snprintf(comments[i], sizeof(comments[i]), "pyrometer %s", PYROMETER_VERSION);
	cptr[i] = comments[i];
	sp->prof.start_ns = e->from_ns;
	sp->prof.duration_ns = until_ns - e->from_ns;
	return pprof_encode(&sp->prof, cptr, i + 1, &e->data, &e->len);
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Ends the interval: one profile per service that had samples, to every sink. */
static void flush_interval(struct run *r)
{
	uint64_t until = realtime_ns();
	size_t i;

	for (i = 0; i < r->nsvc; i++) {
		struct service_prof *sp = &r->svc[i];
		struct export_profile e;

		if (sp->prof.samples.n) {
			if (encode(r, sp, until, &e)) {
				log_error("run: cannot encode the profile of %s", sp->name);
			} else {
				r->profiles++;
				if (r->store)
					store_put(r->store, &e);
				if (r->shipper)
					shipper_submit(r->shipper, &e);
				free(e.data);
			}
		}
		profile_free(&sp->prof);
	}
	free(r->svc);
	r->svc = NULL;
	r->nsvc = 0;
	r->interval_start_ns = until;
	r->interval_start_mono = monotonic_ns();
}

/* ---- main loop ---- */

static int loop(struct run *r)
{
	uint64_t next_drain = monotonic_ns() + DRAIN_MS * 1000000ull;
	uint64_t interval_ns = (uint64_t)(r->interval * 1e9);
	int err;

	while (!cmd_stop_requested) {
		uint64_t now = monotonic_ns();
		uint64_t end = r->interval_start_mono + interval_ns;
		uint64_t until = next_drain < end ? next_drain : end;

		err = cpuprof__poll(r->cpu, now < until ? (int)((until - now) / 1000000) + 1 : 0);
		if (err < 0 && err != -EINTR)
			return err;
		now = monotonic_ns();
		if (now >= next_drain || now >= end) {
			if ((err = cpuprof__drain(r->cpu)))
				return err;
			next_drain = now + DRAIN_MS * 1000000ull;
		}
		if (now >= end)
			flush_interval(r);
	}
	/* Stopping: what was sampled so far is an interval too. */
	err = cpuprof__drain(r->cpu);
	flush_interval(r);
	return err;
}

static int open_sinks(struct run *r)
{
	struct store_opts so = { .dir = r->store_dir,
				 .cap_bytes = r->store_cap,
				 .max_age_sec = r->store_max_age };
	struct shipper_opts sh = { .backoff_max_sec = r->backoff_max };
	int err;

	if ((r->store_set || !r->pyro.url) && (err = store_open(&so, &r->store)))
		return err;
	if (!r->pyro.url)
		return 0;
	if ((err = pyroscope_new(&r->pyro, &r->sink)) ||
	    (err = spool_open(r->spool_dir, r->spool_cap, &r->spool)))
		return err;
	sh.sink = r->sink;
	sh.spool = r->spool;
	return shipper_start(&sh, &r->shipper);
}

/* Stops delivery (the queue and an upload in flight go to the spool) and says what became
 * of every profile: submitted = delivered + rejected + dropped + left in the spool. */
static void close_sinks(struct run *r)
{
	struct shipper_stats sh;
	struct spool_stats sp;

	if (r->shipper) {
		shipper_stop(r->shipper, &sh);
		spool_stats(r->spool, &sp);
		log_info("run: delivery: %" PRIu64 " profiles submitted, %" PRIu64
			 " delivered, %" PRIu64 " rejected, %" PRIu64
			 " dropped (spool cap), %" PRIu64 " corrupt in spool, %" PRIu64
			 " failed attempts; %" PRIu64 " left in the spool (%" PRIu64 " bytes)",
			 sh.submitted, sh.delivered, sh.rejected, sp.dropped, sp.corrupt,
			 sh.failed_attempts, sp.files, sp.bytes);
	}
	spool_close(r->spool);
	pyroscope_free(r->sink);
	store_close(r->store);
}

static int run(struct run *r)
{
	struct cpuprof_ops ops = { .profile_for = profile_for, .ctx = r };
	int err;

	if (gethostname(r->host, sizeof(r->host) - 1))
		snprintf(r->host, sizeof(r->host), "unknown");
	if ((err = open_sinks(r)) || (err = cpuprof__new(&ops, &r->cpu)) ||
	    (err = cpuprof__sample(r->cpu, r->freq, true)))
		return err;
	r->interval_start_ns = realtime_ns();
	r->interval_start_mono = monotonic_ns();
	log_info("run: sampling at %d Hz, a profile per service every %g s to %s%s%s", r->freq,
		 r->interval, r->store ? r->store_dir : "", r->store && r->sink ? " and " : "",
		 r->sink ? r->pyro.url : "");
	err = loop(r);
	log_info("run: stopping after %" PRIu64 " profiles", r->profiles);
	return err;
}

int cmd_run(int argc, char **argv)
{
	struct run r = {
		.freq = 99,
		.interval = 15,
		.store_dir = "/var/lib/pyrometer/profiles",
		.spool_dir = "/var/lib/pyrometer/spool",
		.store_cap = 1ull << 30,
		.store_max_age = 7 * 86400,
		.spool_cap = 256ull << 20,
		.backoff_max = 300,
	};
	int err = parse_args(argc, argv, &r);

	if (err)
		return err > 0 ? 0 : 2;
	if (privs_require(PRIV_BPF | PRIV_PERFMON | PRIV_SYS_PTRACE, "run"))
		return 1;
	cmd_handle_stop_signals();
	err = run(&r);
	close_sinks(&r);
	cpuprof__free(r.cpu);
	for (size_t i = 0; i < r.nsvc; i++)
		profile_free(&r.svc[i].prof);
	free(r.svc);
	return err ? 1 : 0;
}
