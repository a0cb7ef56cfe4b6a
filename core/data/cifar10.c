/* stub: being written */
typedef int lb_stub_cifar10_t;
