/* SPDX-License-Identifier: MIT
 * Error codes and the per-thread last error message (see err.h). */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char lb_msg[2048];

static const char *const lb_err_names[LB_ERR__COUNT] = {
	[LB_OK] = "success",
	[LB_ERR_OOM] = "out of memory",
	[LB_ERR_SHAPE] = "shape error",
	[LB_ERR_IO] = "I/O error",
	[LB_ERR_CONFIG] = "configuration error",
	[LB_ERR_DATA] = "dataset error",
	[LB_ERR_MPI] = "MPI error",
	[LB_ERR_HDF5] = "HDF5 error",
	[LB_ERR_STATE] = "state error",
	[LB_ERR_NUMERIC] = "numerical error",
	[LB_ERR_SIGNAL] = "stopped by a signal",
};

const char *lb_strerror(int err)
{
	if (err < 0 || err >= LB_ERR__COUNT)
		return "unknown error";
	return lb_err_names[err];
}

int lb_error(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(lb_msg, sizeof lb_msg, fmt, ap);
	va_end(ap);
	return err;
}

int lb_error_prefix(int err, const char *fmt, ...)
{
	char old[sizeof lb_msg], pre[512];
	va_list ap;
	memcpy(old, lb_msg, sizeof old);
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	snprintf(lb_msg, sizeof lb_msg, "%s: %s", pre, old[0] ? old : lb_strerror(err));
	return err;
}

const char *lb_error_message(void)
{
	return lb_msg;
}

void lb_error_clear(void)
{
	lb_msg[0] = '\0';
}
