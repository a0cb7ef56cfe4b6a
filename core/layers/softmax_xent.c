/* stub: being written */
typedef int lb_stub_softmax_xent_t;
