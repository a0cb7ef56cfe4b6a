/* stub: being written */
typedef int lb_stub_conv2d_t;
