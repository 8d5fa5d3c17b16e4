// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Service names from command lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "procs/service.h"

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
	service_from_argv(argv, argc, fallback, out, sizeof(out));
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
		cmocka_unit_test(falls_back_to_comm),
	};

	return cmocka_run_group_tests_name("service", tests, NULL, NULL);
}
