/* stub */
#ifndef LB_SPEC_H
#define LB_SPEC_H
#endif
