/* SPDX-License-Identifier: MIT
 * The built-in architectures as layer lists (methods.md §1). Each returns
 * the same struct lb_layer_spec a custom YAML model gives, so one builder
 * (model.c) serves all. Shapes in comments are for 28x28x1 (MNIST) inputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "models/model.h"

struct specs {
	struct lb_layer_spec *v;
	int n, cap;
	int oom;
};

static struct lb_layer_spec *push(struct specs *s, enum lb_op op, const char *name)
{
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 32;
		struct lb_layer_spec *v = realloc(s->v, (size_t)cap * sizeof *v);
		if (!v) {
			s->oom = 1;
			return NULL;
		}
		s->v = v;
		s->cap = cap;
	}
	struct lb_layer_spec *l = &s->v[s->n++];
	memset(l, 0, sizeof *l);
	l->op = op;
	l->bias = true;
	l->name = name ? strdup(name) : NULL;
	if (name && !l->name)
		s->oom = 1;
	return l;
}

static void set_str(struct specs *s, char **dst, const char *v)
{
	*dst = strdup(v);
	if (!*dst)
		s->oom = 1;
}

static void conv(struct specs *s, const char *name, unsigned out, unsigned k, unsigned stride,
		 unsigned pad, bool bias)
{
	struct lb_layer_spec *l = push(s, LB_OP_CONV, name);
	if (!l)
		return;
	l->out = out;
	l->kernel = k;
	l->stride = stride;
	l->pad = pad;
	l->bias = bias;
}

static void linear(struct specs *s, const char *name, unsigned out)
{
	struct lb_layer_spec *l = push(s, LB_OP_LINEAR, name);
	if (l)
		l->out = out;
}

static void simple(struct specs *s, enum lb_op op, const char *name)
{
	push(s, op, name);
}

static void maxpool(struct specs *s, const char *name, unsigned k)
{
	struct lb_layer_spec *l = push(s, LB_OP_MAXPOOL, name);
	if (l) {
		l->kernel = k;
		l->stride = k;
	}
}

static void dropout(struct specs *s, const char *name, float p)
{
	struct lb_layer_spec *l = push(s, LB_OP_DROPOUT, name);
	if (l)
		l->p = p;
}

/* conv(5) relu pool conv(5) relu pool flatten fc relu [fc relu] [dropout] fc */
static void lenet_like(struct specs *s, unsigned c1, unsigned c2, const unsigned *fc, int n_fc,
		       float p, int n_classes)
{
	char name[32];
	conv(s, "conv1", c1, 5, 1, 0, true);
	simple(s, LB_OP_RELU, "relu1");
	maxpool(s, "pool1", 2);
	conv(s, "conv2", c2, 5, 1, 0, true);
	simple(s, LB_OP_RELU, "relu2");
	maxpool(s, "pool2", 2);
	simple(s, LB_OP_FLATTEN, "flatten");
	for (int i = 0; i < n_fc; i++) {
		snprintf(name, sizeof name, "fc%d", i + 1);
		linear(s, name, fc[i]);
		snprintf(name, sizeof name, "relu%d", i + 3);
		simple(s, LB_OP_RELU, name);
	}
	if (p > 0)
		dropout(s, "dropout", p);
	snprintf(name, sizeof name, "fc%d", n_fc + 1);
	linear(s, name, (unsigned)n_classes);
}

static void mlp(struct specs *s, const struct lb_model_cfg *mc, int n_classes)
{
	char name[32];
	simple(s, LB_OP_FLATTEN, "flatten");
	for (unsigned i = 0; i < mc->n_hidden; i++) {
		snprintf(name, sizeof name, "fc%u", i + 1);
		linear(s, name, mc->hidden[i]);
		snprintf(name, sizeof name, "relu%u", i + 1);
		simple(s, LB_OP_RELU, name);
	}
	if (mc->dropout > 0)
		dropout(s, "dropout", mc->dropout);
	snprintf(name, sizeof name, "fc%u", mc->n_hidden + 1);
	linear(s, name, (unsigned)n_classes);
}

/* VGG-7 (RQ's CIFAR net): 2x128C3-MP2-2x256C3-MP2-2x512C3-MP2-1024FC-10, each
 * conv followed by batch norm and ReLU (RQ: conv -> BN -> quantize). */
static void vgg7(struct specs *s, float p, int n_classes)
{
	static const unsigned ch[6] = {128, 128, 256, 256, 512, 512};
	char name[32];
	for (int i = 0; i < 6; i++) {
		snprintf(name, sizeof name, "conv%d", i + 1);
		conv(s, name, ch[i], 3, 1, 1, false);
		snprintf(name, sizeof name, "bn%d", i + 1);
		simple(s, LB_OP_BN, name);
		snprintf(name, sizeof name, "relu%d", i + 1);
		simple(s, LB_OP_RELU, name);
		if (i % 2 == 1) {
			snprintf(name, sizeof name, "pool%d", i / 2 + 1);
			maxpool(s, name, 2);
		}
	}
	simple(s, LB_OP_FLATTEN, "flatten");
	linear(s, "fc1", 1024);
	simple(s, LB_OP_RELU, "relu7");
	if (p > 0)
		dropout(s, "dropout", p);
	linear(s, "fc2", (unsigned)n_classes);
}

/* ResNet-20 as in BSQ (methods.md §1.5): conv3x3(16) BN ReLU, 3 stages of 3
 * BasicBlocks (16, 32, 64 channels; stride 2 at the first block of stages
 * 2 and 3), global average pool, FC. BasicBlock: conv BN ReLU6 conv BN
 * (+ shortcut) ReLU6; the shortcut is a 1x1 stride-2 conv + BN when the shape
 * changes (option B). Convs have no bias. */
static void resnet20(struct specs *s, int n_classes)
{
	char pre[32], name[64], prev[64];
	conv(s, "conv1", 16, 3, 1, 1, false);
	simple(s, LB_OP_BN, "bn1");
	simple(s, LB_OP_RELU, "relu1");
	snprintf(prev, sizeof prev, "relu1");
	unsigned in_ch = 16;
	for (int stage = 0; stage < 3; stage++) {
		unsigned ch = 16u << stage;
		for (int blk = 0; blk < 3; blk++) {
			unsigned stride = (stage > 0 && blk == 0) ? 2 : 1;
			snprintf(pre, sizeof pre, "layer%d.%d", stage + 1, blk);
			snprintf(name, sizeof name, "%s.conv1", pre);
			conv(s, name, ch, 3, stride, 1, false);
			snprintf(name, sizeof name, "%s.bn1", pre);
			simple(s, LB_OP_BN, name);
			snprintf(name, sizeof name, "%s.relu1", pre);
			simple(s, LB_OP_RELU6, name);
			snprintf(name, sizeof name, "%s.conv2", pre);
			conv(s, name, ch, 3, 1, 1, false);
			snprintf(name, sizeof name, "%s.bn2", pre);
			simple(s, LB_OP_BN, name);
			char body[64];
			snprintf(body, sizeof body, "%s.bn2", pre);
			char shortcut[64];
			snprintf(shortcut, sizeof shortcut, "%s", prev);
			if (stride != 1 || in_ch != ch) {
				snprintf(name, sizeof name, "%s.down.conv", pre);
				conv(s, name, ch, 1, stride, 0, false);
				if (s->n)
					set_str(s, &s->v[s->n - 1].input, prev);
				snprintf(name, sizeof name, "%s.down.bn", pre);
				simple(s, LB_OP_BN, name);
				snprintf(shortcut, sizeof shortcut, "%s.down.bn", pre);
			}
			snprintf(name, sizeof name, "%s.add", pre);
			struct lb_layer_spec *a = push(s, LB_OP_ADD, name);
			if (a) {
				set_str(s, &a->input, body);
				set_str(s, &a->from, shortcut);
			}
			snprintf(name, sizeof name, "%s.relu2", pre);
			simple(s, LB_OP_RELU6, name);
			snprintf(prev, sizeof prev, "%s", name);
			in_ch = ch;
		}
	}
	simple(s, LB_OP_GAP, "gap");
	linear(s, "fc", (unsigned)n_classes);
}

void lb_arch_specs_free(struct lb_layer_spec *specs, int n)
{
	if (!specs)
		return;
	for (int i = 0; i < n; i++) {
		free(specs[i].name);
		free(specs[i].input);
		free(specs[i].from);
	}
	free(specs);
}

int lb_arch_specs(const struct lb_model_cfg *mc, int n_classes, struct lb_layer_spec **out,
		  int *n)
{
	struct specs s = {0};
	static const unsigned fc_lenet[1] = {512}, fc_caffe[1] = {500}, fc_simple[2] = {120, 84};
	*out = NULL;
	*n = 0;
	switch (mc->arch) {
	case LB_ARCH_MLP:
		mlp(&s, mc, n_classes);
		break;
	case LB_ARCH_LENET5:
		lenet_like(&s, 32, 64, fc_lenet, 1, mc->dropout, n_classes);
		break;
	case LB_ARCH_LENET5_CAFFE:
		lenet_like(&s, 20, 50, fc_caffe, 1, mc->dropout, n_classes);
		break;
	case LB_ARCH_SIMPLENET5:
		lenet_like(&s, 6, 16, fc_simple, 2, mc->dropout, n_classes);
		break;
	case LB_ARCH_VGG7:
		vgg7(&s, mc->dropout, n_classes);
		break;
	case LB_ARCH_RESNET20:
		resnet20(&s, n_classes);
		break;
	case LB_ARCH_CUSTOM:
		for (unsigned i = 0; i < mc->n_layers; i++) {
			const struct lb_layer_spec *src = &mc->layers[i];
			struct lb_layer_spec *l = push(&s, src->op, src->name);
			if (!l)
				break;
			char *nm = l->name;
			*l = *src;
			l->name = nm;
			l->input = NULL;
			l->from = NULL;
			if (src->input)
				set_str(&s, &l->input, src->input);
			if (src->from)
				set_str(&s, &l->from, src->from);
		}
		break;
	default:
		return lb_error(LB_ERR_CONFIG, "model.arch: unknown architecture %d", (int)mc->arch);
	}
	if (s.oom) {
		lb_arch_specs_free(s.v, s.n);
		return lb_error(LB_ERR_OOM, "out of memory building the layer list");
	}
	*out = s.v;
	*n = s.n;
	return LB_OK;
}
