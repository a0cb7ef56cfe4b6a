/* SPDX-License-Identifier: MIT
 * MPI helpers (see comm.h). */
#include "comm.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

#define LB_CHUNK ((size_t)1 << 28)

static int mpi_fail(int mrc, const char *what)
{
	char s[MPI_MAX_ERROR_STRING];
	int len = 0;
	MPI_Error_string(mrc, s, &len);
	return lb_error(LB_ERR_MPI, "%s failed: %s", what, s);
}

int lb_comm_agree(MPI_Comm comm, int rc)
{
	int rank, size, mine, first, code = rc;
	char msg[2048];
	if (comm == MPI_COMM_NULL)
		return rc;
	MPI_Comm_rank(comm, &rank);
	MPI_Comm_size(comm, &size);
	mine = rc ? rank : size;
	MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
	if (first == size)
		return LB_OK;
	if (rank == first)
		snprintf(msg, sizeof msg, "%s", lb_error_message());
	MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, first, comm);
	MPI_Bcast(&code, 1, MPI_INT, first, comm);
	if (first != 0)
		return lb_error(code, "rank %d: %s", first, msg);
	return lb_error(code, "%s", msg);
}

int lb_comm_same_u64(MPI_Comm comm, uint64_t v, const char *what)
{
	uint64_t lo, hi;
	if (comm == MPI_COMM_NULL)
		return LB_OK;
	MPI_Allreduce(&v, &lo, 1, MPI_UINT64_T, MPI_MIN, comm);
	MPI_Allreduce(&v, &hi, 1, MPI_UINT64_T, MPI_MAX, comm);
	if (lo != hi)
		return lb_error(LB_ERR_CONFIG,
				"the ranks hold different %s (%016llx vs %016llx): every rank must "
				"read the same configuration",
				what, (unsigned long long)lo, (unsigned long long)hi);
	return LB_OK;
}

int lb_comm_tree_sum(MPI_Comm comm, float *v, float *tmp, size_t n)
{
	int rank, size;
	if (comm == MPI_COMM_NULL)
		return LB_OK;
	MPI_Comm_rank(comm, &rank);
	MPI_Comm_size(comm, &size);
	if (size & (size - 1))
		return lb_error(LB_ERR_CONFIG, "tree sum over %d ranks: needs a power of two", size);
	for (int bit = 1; bit < size; bit <<= 1) {
		int partner = rank ^ bit;
		for (size_t off = 0; off < n; off += LB_CHUNK) {
			int c = (int)(n - off < LB_CHUNK ? n - off : LB_CHUNK);
			int mrc = MPI_Sendrecv(v + off, c, MPI_FLOAT, partner, 17, tmp + off, c,
					       MPI_FLOAT, partner, 17, comm, MPI_STATUS_IGNORE);
			if (mrc != MPI_SUCCESS)
				return mpi_fail(mrc, "MPI_Sendrecv (gradient tree)");
		}
		/* lower rank's partial sum first: both partners compute the same a + b */
		if (rank < partner)
			for (size_t i = 0; i < n; i++)
				v[i] = v[i] + tmp[i];
		else
			for (size_t i = 0; i < n; i++)
				v[i] = tmp[i] + v[i];
	}
	return LB_OK;
}

int lb_comm_allreduce_sum(MPI_Comm comm, float *v, size_t n)
{
	if (comm == MPI_COMM_NULL)
		return LB_OK;
	for (size_t off = 0; off < n; off += LB_CHUNK) {
		int c = (int)(n - off < LB_CHUNK ? n - off : LB_CHUNK);
		int mrc = MPI_Allreduce(MPI_IN_PLACE, v + off, c, MPI_FLOAT, MPI_SUM, comm);
		if (mrc != MPI_SUCCESS)
			return mpi_fail(mrc, "MPI_Allreduce (gradients)");
	}
	return LB_OK;
}

int lb_comm_bcast_floats(MPI_Comm comm, float *v, size_t n, int root)
{
	if (comm == MPI_COMM_NULL)
		return LB_OK;
	for (size_t off = 0; off < n; off += LB_CHUNK) {
		int c = (int)(n - off < LB_CHUNK ? n - off : LB_CHUNK);
		int mrc = MPI_Bcast(v + off, c, MPI_FLOAT, root, comm);
		if (mrc != MPI_SUCCESS)
			return mpi_fail(mrc, "MPI_Bcast");
	}
	return LB_OK;
}
