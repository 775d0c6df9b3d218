//go:build linux && cgo

// Run-time binding of libibverbs and librdmacm (see verbs.h). cgo cannot
// call a function pointer, so each entry point has a small C wrapper; the
// data-path helpers (fp_post_send, fp_poll) do a batch's work in one call.
// ibv_post_send, ibv_post_recv, ibv_poll_cq and ibv_req_notify_cq are the
// header's static inline versions: they dispatch through context->ops and
// need no symbol.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "verbs.h"

// X(library, symbol): every exported function called. The pointer types
// are taken from the headers' prototypes (__typeof__ does not reference the
// symbol), so they cannot drift from the declarations. ibv_reg_mr is also a
// function-like macro in verbs.h; named without parentheses it is the
// declared function, the real symbol.
#define FP_FUNCS(X)                  \
	X(ibv, ibv_alloc_pd)             \
	X(ibv, ibv_dealloc_pd)           \
	X(ibv, ibv_query_device)         \
	X(ibv, ibv_get_device_name)      \
	X(ibv, ibv_reg_mr)               \
	X(ibv, ibv_dereg_mr)             \
	X(ibv, ibv_create_comp_channel)  \
	X(ibv, ibv_destroy_comp_channel) \
	X(ibv, ibv_create_cq)            \
	X(ibv, ibv_destroy_cq)           \
	X(ibv, ibv_get_cq_event)         \
	X(ibv, ibv_ack_cq_events)        \
	X(ibv, ibv_wc_status_str)        \
	X(cm, rdma_create_event_channel) \
	X(cm, rdma_destroy_event_channel) \
	X(cm, rdma_create_id)            \
	X(cm, rdma_destroy_id)           \
	X(cm, rdma_migrate_id)           \
	X(cm, rdma_bind_addr)            \
	X(cm, rdma_listen)               \
	X(cm, rdma_resolve_addr)         \
	X(cm, rdma_resolve_route)        \
	X(cm, rdma_create_qp)            \
	X(cm, rdma_destroy_qp)           \
	X(cm, rdma_connect)              \
	X(cm, rdma_accept)               \
	X(cm, rdma_reject)               \
	X(cm, rdma_disconnect)           \
	X(cm, rdma_get_cm_event)         \
	X(cm, rdma_ack_cm_event)         \
	X(cm, rdma_event_str)            \
	X(cm, rdma_get_devices)          \
	X(cm, rdma_free_devices)

#define FP_TYPEDEF(lib, name) typedef __typeof__(name) fp_##name##_fn;
FP_FUNCS(FP_TYPEDEF)

struct fp_table {
#define FP_FIELD(lib, name) fp_##name##_fn *name;
	FP_FUNCS(FP_FIELD)
};

// The table is written once, by the first successful fp_verbs_load, and read
// without locks afterwards (Go calls fp_verbs_load under sync.Once; tests call it
// again with other paths).
static struct fp_table fn;
static int loaded;

// ibv_reg_dmabuf_mr came with rdma-core 34: it is looked up apart from the
// table, and a library without it still loads (fp_reg_dmabuf_mr then fails
// with -ENOSYS). Its type is written out rather than taken from the header,
// so that headers older than 34, which do not declare it, still build.
typedef struct ibv_mr *fp_reg_dmabuf_mr_fn(struct ibv_pd *pd, uint64_t offset, size_t length, uint64_t iova, int fd,
                                           int access);
static fp_reg_dmabuf_mr_fn *reg_dmabuf_mr;
static pthread_mutex_t load_mu = PTHREAD_MUTEX_INITIALIZER;

int fp_verbs_load(const char *ibverbs, const char *rdmacm, char *err, size_t errlen) {
	struct fp_table t;
	void *ibv, *cm;
	pthread_mutex_lock(&load_mu);
	ibv = dlopen(ibverbs, RTLD_NOW | RTLD_LOCAL);
	if (!ibv) {
		snprintf(err, errlen, "%s", dlerror());
		pthread_mutex_unlock(&load_mu);
		return -1;
	}
	cm = dlopen(rdmacm, RTLD_NOW | RTLD_LOCAL);
	if (!cm) {
		snprintf(err, errlen, "%s", dlerror());
		dlclose(ibv);
		pthread_mutex_unlock(&load_mu);
		return -1;
	}
#define FP_LOAD(lib, name)                                                                          \
	t.name = (fp_##name##_fn *)dlsym(lib, #name);                                                   \
	if (!t.name) {                                                                                  \
		snprintf(err, errlen, "%s: symbol %s not found", lib == ibv ? ibverbs : rdmacm, #name); \
		goto fail;                                                                                  \
	}
	FP_FUNCS(FP_LOAD)
	if (!loaded) { // a later load (of other paths) only reports whether it would work
		fn = t;
		reg_dmabuf_mr = (fp_reg_dmabuf_mr_fn *)dlsym(ibv, "ibv_reg_dmabuf_mr");
		loaded = 1;
	}
	pthread_mutex_unlock(&load_mu);
	return 0;
fail:
	dlclose(cm);
	dlclose(ibv);
	pthread_mutex_unlock(&load_mu);
	return -1;
}

static int neg_errno(void) { return errno ? -errno : -EIO; }

// ---------------------------------------------------------------- verbs

int fp_alloc_pd(struct ibv_context *ctx, struct ibv_pd **pd) {
	errno = 0;
	*pd = fn.ibv_alloc_pd(ctx);
	return *pd ? 0 : neg_errno();
}

int fp_dealloc_pd(struct ibv_pd *pd) {
	int rc = fn.ibv_dealloc_pd(pd);
	return rc > 0 ? -rc : rc;
}

int fp_device_caps(struct ibv_context *ctx, int *max_qp_rd_atom, int *max_qp_init_rd_atom, int *max_qp_wr,
                   int *max_cqe) {
	struct ibv_device_attr a;
	int rc;
	memset(&a, 0, sizeof a);
	rc = fn.ibv_query_device(ctx, &a);
	if (rc)
		return rc > 0 ? -rc : rc;
	*max_qp_rd_atom = a.max_qp_rd_atom;
	*max_qp_init_rd_atom = a.max_qp_init_rd_atom;
	*max_qp_wr = a.max_qp_wr;
	*max_cqe = a.max_cqe;
	return 0;
}

const char *fp_device_name(struct ibv_context *ctx) {
	const char *s = fn.ibv_get_device_name(ctx->device);
	return s ? s : "";
}

int fp_reg_mr(struct ibv_pd *pd, uint64_t addr, size_t len, struct ibv_mr **mr) {
	errno = 0;
	// Parenthesized: ibv_reg_mr followed by "(" is verbs.h's macro.
	*mr = (fn.ibv_reg_mr)(pd, (void *)(uintptr_t)addr, len,
	                      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
	return *mr ? 0 : neg_errno();
}

int fp_have_reg_dmabuf_mr(void) { return reg_dmabuf_mr != NULL; }

int fp_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t offset, size_t len, uint64_t iova, int fd, struct ibv_mr **mr) {
	*mr = NULL;
	if (!reg_dmabuf_mr)
		return -ENOSYS;
	errno = 0;
	*mr = reg_dmabuf_mr(pd, offset, len, iova, fd,
	                    IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE);
	return *mr ? 0 : neg_errno();
}

int fp_dereg_mr(struct ibv_mr *mr) {
	int rc = fn.ibv_dereg_mr(mr);
	return rc > 0 ? -rc : rc;
}

int fp_create_comp_channel(struct ibv_context *ctx, struct ibv_comp_channel **ch) {
	errno = 0;
	*ch = fn.ibv_create_comp_channel(ctx);
	return *ch ? 0 : neg_errno();
}

int fp_destroy_comp_channel(struct ibv_comp_channel *ch) {
	int rc = fn.ibv_destroy_comp_channel(ch);
	return rc > 0 ? -rc : rc;
}

int fp_create_cq(struct ibv_context *ctx, int cqe, struct ibv_comp_channel *ch, struct ibv_cq **cq) {
	errno = 0;
	*cq = fn.ibv_create_cq(ctx, cqe, NULL, ch, 0);
	return *cq ? 0 : neg_errno();
}

int fp_destroy_cq(struct ibv_cq *cq) {
	int rc = fn.ibv_destroy_cq(cq);
	return rc > 0 ? -rc : rc;
}

int fp_get_cq_event(struct ibv_comp_channel *ch) {
	struct ibv_cq *cq;
	void *ctx;
	if (fn.ibv_get_cq_event(ch, &cq, &ctx))
		return neg_errno();
	fn.ibv_ack_cq_events(cq, 1);
	return 0;
}

static int poll_cq(struct ibv_cq *cq, struct fp_wc *out, int n, int recv) {
	struct ibv_wc wc[FP_MAX_POLL_WC];
	int got, i;
	if (n <= 0)
		return 0;
	got = ibv_poll_cq(cq, n, wc);
	if (got < 0)
		return -EIO;
	for (i = 0; i < got; i++) {
		out[i].wr_id = wc[i].wr_id;
		out[i].byte_len = wc[i].byte_len;
		out[i].with_inv = (wc[i].wc_flags & IBV_WC_WITH_INV) != 0;
		out[i].inv_rkey = out[i].with_inv ? wc[i].invalidated_rkey : 0;
		out[i].vendor_err = wc[i].vendor_err;
		out[i].status = (uint8_t)wc[i].status;
		out[i].opcode = (uint8_t)wc[i].opcode;
		out[i].recv = (uint8_t)recv;
	}
	return got;
}

static int poll_both(struct ibv_cq *scq, struct ibv_cq *rcq, struct fp_wc *out, int n, int recv_first) {
	int a, b;
	a = poll_cq(recv_first ? rcq : scq, out, n, recv_first);
	if (a < 0)
		return a;
	b = poll_cq(recv_first ? scq : rcq, out + a, n - a, !recv_first);
	if (b < 0)
		return b;
	return a + b;
}

int fp_poll(struct ibv_cq *scq, struct ibv_cq *rcq, struct fp_wc *out, int n, int recv_first, int arm) {
	int got, rc;
	if (n > FP_MAX_POLL_WC)
		n = FP_MAX_POLL_WC;
	got = poll_both(scq, rcq, out, n, recv_first);
	if (got != 0 || !arm)
		return got;
	if ((rc = ibv_req_notify_cq(scq, 0)) != 0 || (rc = ibv_req_notify_cq(rcq, 0)) != 0)
		return rc > 0 ? -rc : rc;
	return poll_both(scq, rcq, out, n, recv_first);
}

int fp_post_send(struct ibv_qp *qp, const struct fp_wr *wrs, int n, int *posted) {
	struct ibv_send_wr wr[FP_MAX_POST_WR], *bad = NULL;
	struct ibv_sge sge[FP_MAX_POST_WR];
	int i, rc;
	*posted = 0;
	if (n <= 0 || n > FP_MAX_POST_WR)
		return -EINVAL;
	memset(wr, 0, sizeof wr[0] * (size_t)n);
	for (i = 0; i < n; i++) {
		const struct fp_wr *w = &wrs[i];
		wr[i].wr_id = w->wr_id;
		wr[i].next = i + 1 < n ? &wr[i + 1] : NULL;
		if (w->len > 0) {
			sge[i].addr = w->addr;
			sge[i].length = w->len;
			sge[i].lkey = w->lkey;
			wr[i].sg_list = &sge[i];
			wr[i].num_sge = 1;
		}
		wr[i].opcode = (enum ibv_wr_opcode)w->opcode;
		wr[i].send_flags = w->signaled ? IBV_SEND_SIGNALED : 0;
		switch (w->opcode) {
		case IBV_WR_RDMA_READ:
		case IBV_WR_RDMA_WRITE:
			wr[i].wr.rdma.remote_addr = w->remote_addr;
			wr[i].wr.rdma.rkey = w->rkey;
			break;
		case IBV_WR_SEND_WITH_INV:
			wr[i].invalidate_rkey = w->rkey;
			break;
		}
	}
	rc = ibv_post_send(qp, wr, &bad);
	if (rc) {
		*posted = bad ? (int)(bad - wr) : 0;
		return rc > 0 ? -rc : rc;
	}
	*posted = n;
	return 0;
}

int fp_post_recv(struct ibv_qp *qp, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey) {
	struct ibv_recv_wr wr, *bad = NULL;
	struct ibv_sge sge;
	int rc;
	memset(&wr, 0, sizeof wr);
	wr.wr_id = wr_id;
	if (len > 0) {
		sge.addr = addr;
		sge.length = len;
		sge.lkey = lkey;
		wr.sg_list = &sge;
		wr.num_sge = 1;
	}
	rc = ibv_post_recv(qp, &wr, &bad);
	return rc > 0 ? -rc : rc;
}

const char *fp_wc_status_str(int status) {
	const char *s = loaded ? fn.ibv_wc_status_str((enum ibv_wc_status)status) : NULL;
	return s ? s : "";
}

// ---------------------------------------------------------------- rdma_cm

int fp_create_event_channel(struct rdma_event_channel **ch) {
	errno = 0;
	*ch = fn.rdma_create_event_channel();
	return *ch ? 0 : neg_errno();
}

void fp_destroy_event_channel(struct rdma_event_channel *ch) { fn.rdma_destroy_event_channel(ch); }

int fp_event_channel_fd(struct rdma_event_channel *ch) { return ch->fd; }

int fp_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id) {
	return fn.rdma_create_id(ch, id, NULL, RDMA_PS_TCP) ? neg_errno() : 0;
}

int fp_destroy_id(struct rdma_cm_id *id) { return fn.rdma_destroy_id(id) ? neg_errno() : 0; }

int fp_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *ch) {
	return fn.rdma_migrate_id(id, ch) ? neg_errno() : 0;
}

static socklen_t to_sockaddr(const struct fp_addr *a, struct sockaddr_storage *ss) {
	memset(ss, 0, sizeof *ss);
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons(a->port);
		s->sin6_scope_id = a->scope_id;
		memcpy(&s->sin6_addr, a->ip, 16);
		return sizeof *s;
	}
	struct sockaddr_in *s = (struct sockaddr_in *)ss;
	s->sin_family = AF_INET;
	s->sin_port = htons(a->port);
	memcpy(&s->sin_addr, a->ip, 4);
	return sizeof *s;
}

static void from_sockaddr(const struct sockaddr *sa, struct fp_addr *a) {
	memset(a, 0, sizeof *a);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		a->family = AF_INET;
		a->port = ntohs(s->sin_port);
		memcpy(a->ip, &s->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		a->family = AF_INET6;
		a->port = ntohs(s->sin6_port);
		a->scope_id = s->sin6_scope_id;
		memcpy(a->ip, &s->sin6_addr, 16);
	}
}

int fp_bind_addr(struct rdma_cm_id *id, const struct fp_addr *a) {
	struct sockaddr_storage ss;
	to_sockaddr(a, &ss);
	return fn.rdma_bind_addr(id, (struct sockaddr *)&ss) ? neg_errno() : 0;
}

int fp_listen(struct rdma_cm_id *id, int backlog) { return fn.rdma_listen(id, backlog) ? neg_errno() : 0; }

int fp_resolve_addr(struct rdma_cm_id *id, const struct fp_addr *dst, int timeout_ms) {
	struct sockaddr_storage ss;
	to_sockaddr(dst, &ss);
	return fn.rdma_resolve_addr(id, NULL, (struct sockaddr *)&ss, timeout_ms) ? neg_errno() : 0;
}

int fp_resolve_route(struct rdma_cm_id *id, int timeout_ms) {
	return fn.rdma_resolve_route(id, timeout_ms) ? neg_errno() : 0;
}

int fp_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *scq, struct ibv_cq *rcq, uint32_t send_wr,
                 uint32_t recv_wr, uint32_t *max_send_wr, uint32_t *max_recv_wr) {
	struct ibv_qp_init_attr a;
	memset(&a, 0, sizeof a);
	a.send_cq = scq;
	a.recv_cq = rcq;
	a.qp_type = IBV_QPT_RC;
	a.cap.max_send_wr = send_wr;
	a.cap.max_recv_wr = recv_wr;
	a.cap.max_send_sge = 1;
	a.cap.max_recv_sge = 1;
	a.sq_sig_all = 0;
	if (fn.rdma_create_qp(id, pd, &a))
		return neg_errno();
	// ibv_create_qp reports the sizes it gave, at least those asked for.
	*max_send_wr = a.cap.max_send_wr >= send_wr ? a.cap.max_send_wr : send_wr;
	*max_recv_wr = a.cap.max_recv_wr >= recv_wr ? a.cap.max_recv_wr : recv_wr;
	return 0;
}

void fp_destroy_qp(struct rdma_cm_id *id) { fn.rdma_destroy_qp(id); }

static void conn_param(struct rdma_conn_param *p, const void *priv, uint8_t priv_len, uint8_t responder_resources,
                       uint8_t initiator_depth) {
	memset(p, 0, sizeof *p);
	p->private_data = priv_len ? priv : NULL;
	p->private_data_len = priv_len;
	p->responder_resources = responder_resources;
	p->initiator_depth = initiator_depth;
	p->retry_count = 7;
	p->rnr_retry_count = 7; // 7: retry forever on receiver-not-ready
}

int fp_connect(struct rdma_cm_id *id, const void *priv, uint8_t priv_len, uint8_t responder_resources,
               uint8_t initiator_depth) {
	struct rdma_conn_param p;
	conn_param(&p, priv, priv_len, responder_resources, initiator_depth);
	return fn.rdma_connect(id, &p) ? neg_errno() : 0;
}

int fp_accept(struct rdma_cm_id *id, const void *priv, uint8_t priv_len, uint8_t responder_resources,
              uint8_t initiator_depth) {
	struct rdma_conn_param p;
	conn_param(&p, priv, priv_len, responder_resources, initiator_depth);
	return fn.rdma_accept(id, &p) ? neg_errno() : 0;
}

int fp_reject(struct rdma_cm_id *id, const void *priv, uint8_t priv_len) {
	return fn.rdma_reject(id, priv_len ? priv : NULL, priv_len) ? neg_errno() : 0;
}

int fp_disconnect(struct rdma_cm_id *id) { return fn.rdma_disconnect(id) ? neg_errno() : 0; }

int fp_get_cm_event(struct rdma_event_channel *ch, struct fp_cm_event *out) {
	struct rdma_cm_event *ev;
	if (fn.rdma_get_cm_event(ch, &ev))
		return neg_errno();
	out->id = ev->id;
	out->event = ev->event;
	out->status = ev->status;
	out->priv_len = 0;
	out->initiator_depth = 0;
	out->responder_resources = 0;
	switch (ev->event) {
	case RDMA_CM_EVENT_CONNECT_REQUEST:
	case RDMA_CM_EVENT_CONNECT_RESPONSE:
	case RDMA_CM_EVENT_ESTABLISHED:
	case RDMA_CM_EVENT_REJECTED:
	case RDMA_CM_EVENT_DISCONNECTED:
		out->initiator_depth = ev->param.conn.initiator_depth;
		out->responder_resources = ev->param.conn.responder_resources;
		if (ev->param.conn.private_data && ev->param.conn.private_data_len) {
			out->priv_len = ev->param.conn.private_data_len;
			memcpy(out->priv, ev->param.conn.private_data, out->priv_len);
		}
		break;
	default:
		break;
	}
	fn.rdma_ack_cm_event(ev);
	return 0;
}

const char *fp_event_str(int event) {
	const char *s = loaded ? fn.rdma_event_str((enum rdma_cm_event_type)event) : NULL;
	return s ? s : "";
}

int fp_rdma_device_count(void) {
	int n = 0;
	struct ibv_context **list;
	errno = 0;
	list = fn.rdma_get_devices(&n);
	if (!list)
		return neg_errno();
	fn.rdma_free_devices(list);
	return n;
}

struct ibv_context *fp_id_verbs(struct rdma_cm_id *id) { return id->verbs; }

void fp_id_addrs(struct rdma_cm_id *id, struct fp_addr *local, struct fp_addr *peer) {
	from_sockaddr(rdma_get_local_addr(id), local);
	from_sockaddr(rdma_get_peer_addr(id), peer);
}
