/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
#ifndef PYRO_VERSION_H
#define PYRO_VERSION_H

#define PYROMETER_VERSION "0.1.0"

#endif
