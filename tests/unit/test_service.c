// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Service names from command lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "procs/service.h"

static enum service_source source;

static const char *name(const char *fallback, int argc, ...)
{
	static char out[SERVICE_NAME_MAX];
	char *argv[16];
	va_list ap;
	int i;

	va_start(ap, argc);
	for (i = 0; i < argc; i++)
		argv[i] = va_arg(ap, char *);
	va_end(ap);
	source = service_from_argv(argv, argc, fallback, out, sizeof(out));
	return out;
}

static void derives_names(void **state)
{
	(void)state;
	assert_string_equal(name("python3", 3, "/usr/bin/python3", "-m", "billing.worker"),
			    "billing");
	assert_string_equal(name("python3", 4, "python3.11", "-X", "dev", "/srv/app.py"), "app");
	assert_string_equal(name("python3", 3, "python3", "-u", "tools/report.py"), "report");
	assert_string_equal(
		name("python3", 4, "python3", "/usr/bin/gunicorn", "-w4", "shop.wsgi:app"), "shop");
	assert_string_equal(name("uvicorn", 3, "/venv/bin/uvicorn", "--port=8000", "api.main:app"),
			    "api");
	/* the values of --bind are not applications */
	assert_string_equal(name("python3", 7, "python3", "/usr/bin/hypercorn", "-b",
				 "0.0.0.0:8000", "--workers", "2", "chat.asgi:app"),
			    "chat");
	assert_string_equal(name("python3", 5, "python3", "/usr/bin/gunicorn", "-b",
				 "localhost:8000", "shop.wsgi:create_app()"),
			    "shop");
	assert_string_equal(name("python3", 3, "python3", "/usr/bin/gunicorn", "--help"),
			    "gunicorn");
	assert_string_equal(name("celery", 4, "python3", "/usr/bin/celery", "-A", "tasks.celery"),
			    "tasks");
	assert_string_equal(name("celery", 3, "python3", "/usr/bin/celery", "--app=proj"), "proj");
	assert_string_equal(name("myapp", 2, "/opt/myapp", "serve"), "myapp");
}

/* uWSGI by its application or the file it loads; mod_wsgi by its process group. */
static void names_uwsgi_and_mod_wsgi(void **state)
{
	(void)state;
	assert_string_equal(name("uwsgi", 6, "uwsgi", "--plugin", "python3", "--module",
				 "shop.wsgi:app", "--master"),
			    "shop");
	assert_string_equal(name("uwsgi", 3, "/usr/bin/uwsgi", "--module=blog:app", "-p4"), "blog");
	assert_string_equal(name("uwsgi", 3, "uwsgi-core", "-w", "api.main:application"), "api");
	assert_string_equal(name("uwsgi", 3, "uwsgi", "--wsgi-file", "/srv/www/billing.py"),
			    "billing");
	assert_string_equal(name("uwsgi", 2, "uwsgi", "--ini=/etc/uwsgi/apps-enabled/wiki.ini"),
			    "wiki");
	assert_string_equal(name("uwsgi", 3, "uwsgi", "--mount", "/app=store.web:app"), "store");
	/* an application option wins over the configuration file, wherever it stands */
	assert_string_equal(name("uwsgi", 5, "uwsgi", "--ini", "base.ini", "--module", "crm:app"),
			    "crm");
	assert_string_equal(name("uwsgi", 3, "uwsgi", "--http-socket", ":8000"), "uwsgi");
	/* a prefix of an option is not that option */
	assert_string_equal(name("uwsgi", 3, "uwsgi", "--modulex", "x:app"), "uwsgi");
	assert_string_equal(name("apache2", 1, "(wsgi:intranet)"), "intranet");
	assert_string_equal(name("apache2", 3, "/usr/sbin/apache2", "-k", "start"), "apache2");
	assert_int_equal(source, SERVICE_OWN);
}

/* multiprocessing's children (uvicorn --workers, ProcessPoolExecutor) belong to the program
 * that started them. */
static void multiprocessing_children_are_their_parents(void **state)
{
	(void)state;
	name("python3", 4, "/usr/bin/python3", "-c",
	     "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, "
	     "pipe_handle=7)",
	     "--multiprocessing-fork");
	assert_int_equal(source, SERVICE_PARENT);
	name("python3", 3, "python3", "-c",
	     "from multiprocessing.resource_tracker import main;main(6)");
	assert_int_equal(source, SERVICE_PARENT);
	name("python3", 3, "python3", "-c", "from multiprocessingx import y");
	assert_int_equal(source, SERVICE_OWN);
	assert_string_equal(name("python3", 3, "python3", "-c", "import multiprocessing"),
			    "python3");
	assert_int_equal(source, SERVICE_OWN);
}

static void falls_back_to_comm(void **state)
{
	(void)state;
	assert_string_equal(name("python3", 3, "python3", "-c", "print(1)"), "python3");
	assert_string_equal(name("python3", 1, "python3"), "python3");
	assert_string_equal(name("python3", 2, "python3", "-X"), "python3");
	assert_string_equal(name("python3", 0), "python3");
	assert_string_equal(name("py\nx", 0), "py?x"); /* never a control character in a label */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(derives_names),
		cmocka_unit_test(names_uwsgi_and_mod_wsgi),
		cmocka_unit_test(multiprocessing_children_are_their_parents),
		cmocka_unit_test(falls_back_to_comm),
	};

	return cmocka_run_group_tests_name("service", tests, NULL, NULL);
}
