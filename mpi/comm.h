/* SPDX-License-Identifier: MIT
 * MPI helpers shared by the trainer and the commands: collective error
 * agreement, configuration agreement, and the fixed-order gradient tree.
 * Every function is collective over comm; comm may be MPI_COMM_NULL (one
 * process, no MPI), in which case they do nothing and return their input. */
#ifndef LB_COMM_H
#define LB_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* Agree on an error: returns the code of the lowest-ranked failing process
 * (LB_OK when none failed) and gives every rank that process's message, with
 * "rank N: " in front when N != 0. Lets one rank's failure (a dataset missing
 * on one node) end every rank cleanly instead of hanging the others. */
int lb_comm_agree(MPI_Comm comm, int rc);

/* LB_ERR_CONFIG when the ranks hold different 64-bit values of `what`. */
int lb_comm_same_u64(MPI_Comm comm, uint64_t v, const char *what);

/* Sum v[0..n) over the ranks of comm in a fixed binary tree (recursive
 * doubling: at level l rank r exchanges with r ^ 2^l and both add the
 * lower rank's buffer to the higher rank's, in that order), so the result
 * is bit-identical on every rank and depends only on the ranks' inputs and
 * their order, never on message timing. The size of comm must be a power of
 * two. tmp has room for n floats. */
int lb_comm_tree_sum(MPI_Comm comm, float *v, float *tmp, size_t n);

/* In-place MPI_Allreduce(SUM) in chunks below INT_MAX elements. */
int lb_comm_allreduce_sum(MPI_Comm comm, float *v, size_t n);

/* Broadcast n floats from root in chunks. */
int lb_comm_bcast_floats(MPI_Comm comm, float *v, size_t n, int root);

#endif
