// C side of the verbs provider (verbs_linux.go and the verbs_*_linux.go
// files beside it, whose cgo preambles include this header): libibverbs and
// librdmacm opened with dlopen, every exported entry point called through a
// pointer resolved with dlsym, and the helpers that batch work so that Go
// crosses into C once per post or poll. The functions are defined in
// verbs.c alone. The rdma-core headers are used for the types only: no code
// here references a symbol of either library, so a binary built with this
// runs where rdma-core is not installed.
#ifndef FP_VERBS_H
#define FP_VERBS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

// Work requests per fp_post_send call; Post loops over longer lists.
#define FP_MAX_POST_WR 16
// Completions per fp_poll call.
#define FP_MAX_POLL_WC 32
// Private data carried by one connection manager event (the field is a
// uint8_t length).
#define FP_MAX_PRIV 255

// fp_wr is one send work request with a single scatter/gather entry.
struct fp_wr {
	uint64_t wr_id;
	uint64_t addr;        // local buffer (0 with len 0: no SGE)
	uint64_t remote_addr; // RDMA READ/WRITE
	uint32_t len;
	uint32_t lkey;
	uint32_t rkey;   // READ/WRITE: the peer's key; SEND_WITH_INV: the key to invalidate
	uint8_t opcode;  // enum ibv_wr_opcode
	uint8_t signaled;
};

// fp_wc is the part of a struct ibv_wc the provider uses.
struct fp_wc {
	uint64_t wr_id;
	uint32_t byte_len;
	uint32_t inv_rkey;   // invalidated_rkey when with_inv
	uint32_t vendor_err;
	uint8_t status;      // enum ibv_wc_status
	uint8_t opcode;      // enum ibv_wc_opcode, valid when status is success
	uint8_t with_inv;    // wc_flags & IBV_WC_WITH_INV
	uint8_t recv;        // from the receive queue's CQ
};

// fp_cm_event is a copy of a struct rdma_cm_event, taken before the event
// is acknowledged.
struct fp_cm_event {
	struct rdma_cm_id *id;
	int event;  // enum rdma_cm_event_type
	int status; // REJECTED: the reason; errors: -errno
	uint8_t priv_len;
	uint8_t initiator_depth;
	uint8_t responder_resources;
	uint8_t priv[FP_MAX_PRIV];
};

// fp_addr is a socket address taken apart.
struct fp_addr {
	int family; // AF_INET, AF_INET6 or 0
	uint16_t port;
	uint32_t scope_id;
	uint8_t ip[16];
};

// Loading. fp_verbs_load opens both libraries and resolves every symbol; on
// failure it writes the reason to err and changes nothing (a later call may
// succeed).
int fp_verbs_load(const char *ibverbs, const char *rdmacm, char *err, size_t errlen);

// Verbs. Functions returning int return 0 or a negative errno.
int fp_alloc_pd(struct ibv_context *ctx, struct ibv_pd **pd);
int fp_dealloc_pd(struct ibv_pd *pd);
int fp_device_caps(struct ibv_context *ctx, int *max_qp_rd_atom, int *max_qp_init_rd_atom, int *max_qp_wr,
                   int *max_cqe);
const char *fp_device_name(struct ibv_context *ctx);
int fp_reg_mr(struct ibv_pd *pd, uint64_t addr, size_t len, struct ibv_mr **mr);
// fp_reg_dmabuf_mr is ibv_reg_dmabuf_mr: len bytes at offset in the
// dma-buf fd, at address iova for work requests; -ENOSYS where libibverbs
// lacks it (rdma-core < 34), which fp_have_reg_dmabuf_mr tells in advance.
int fp_have_reg_dmabuf_mr(void);
int fp_reg_dmabuf_mr(struct ibv_pd *pd, uint64_t offset, size_t len, uint64_t iova, int fd, struct ibv_mr **mr);
int fp_dereg_mr(struct ibv_mr *mr);
int fp_create_comp_channel(struct ibv_context *ctx, struct ibv_comp_channel **ch);
int fp_destroy_comp_channel(struct ibv_comp_channel *ch);
int fp_create_cq(struct ibv_context *ctx, int cqe, struct ibv_comp_channel *ch, struct ibv_cq **cq);
int fp_destroy_cq(struct ibv_cq *cq);
// fp_get_cq_event takes one event off the (non-blocking) channel and
// acknowledges it: 0, -EAGAIN when there is none, or another -errno.
int fp_get_cq_event(struct ibv_comp_channel *ch);
// fp_poll drains up to n (at most FP_MAX_POLL_WC) completions from the two
// CQs, the receive CQ first when recv_first. When there are none and arm is
// set, it requests a notification on both and polls once more, so that a
// completion that arrived in between is not missed. Returns the count or a
// negative errno.
int fp_poll(struct ibv_cq *scq, struct ibv_cq *rcq, struct fp_wc *out, int n, int recv_first, int arm);
// fp_post_send posts wrs[0..n) (n <= FP_MAX_POST_WR) as one chain. On
// failure *posted is the number of requests the QP took.
int fp_post_send(struct ibv_qp *qp, const struct fp_wr *wrs, int n, int *posted);
int fp_post_recv(struct ibv_qp *qp, uint64_t wr_id, uint64_t addr, uint32_t len, uint32_t lkey);
const char *fp_wc_status_str(int status);

// Connection manager.
int fp_create_event_channel(struct rdma_event_channel **ch);
void fp_destroy_event_channel(struct rdma_event_channel *ch);
int fp_event_channel_fd(struct rdma_event_channel *ch);
int fp_create_id(struct rdma_event_channel *ch, struct rdma_cm_id **id);
int fp_destroy_id(struct rdma_cm_id *id);
int fp_migrate_id(struct rdma_cm_id *id, struct rdma_event_channel *ch);
int fp_bind_addr(struct rdma_cm_id *id, const struct fp_addr *a);
int fp_listen(struct rdma_cm_id *id, int backlog);
int fp_resolve_addr(struct rdma_cm_id *id, const struct fp_addr *dst, int timeout_ms);
int fp_resolve_route(struct rdma_cm_id *id, int timeout_ms);
int fp_create_qp(struct rdma_cm_id *id, struct ibv_pd *pd, struct ibv_cq *scq, struct ibv_cq *rcq, uint32_t send_wr,
                 uint32_t recv_wr, uint32_t *max_send_wr, uint32_t *max_recv_wr);
void fp_destroy_qp(struct rdma_cm_id *id);
int fp_connect(struct rdma_cm_id *id, const void *priv, uint8_t priv_len, uint8_t responder_resources,
               uint8_t initiator_depth);
int fp_accept(struct rdma_cm_id *id, const void *priv, uint8_t priv_len, uint8_t responder_resources,
              uint8_t initiator_depth);
int fp_reject(struct rdma_cm_id *id, const void *priv, uint8_t priv_len);
int fp_disconnect(struct rdma_cm_id *id);
// fp_get_cm_event takes one event off the (non-blocking) channel, copies it
// to out and acknowledges it: 0, -EAGAIN when there is none, or -errno.
int fp_get_cm_event(struct rdma_event_channel *ch, struct fp_cm_event *out);
const char *fp_event_str(int event);
int fp_rdma_device_count(void);
struct ibv_context *fp_id_verbs(struct rdma_cm_id *id);
void fp_id_addrs(struct rdma_cm_id *id, struct fp_addr *local, struct fp_addr *peer);

#endif
