/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR BSD-2-Clause */
/*
 * virtio-compute guest driver: the ioctl ABI of /dev/vcomputeN, and the
 * device constants the driver uses. The device constants mirror
 * protocol/src/device.rs and protocol/src/limits.rs (the only definition of
 * the wire format); guest-shim/tests/device_abi.rs parses this file and
 * fails if the two drift.
 *
 * A program opens /dev/vcomputeN (one session per open file) and submits
 * chains with VCOMPUTE_IOC_SUBMIT. The driver writes the device header
 * itself: a program never names a session.
 */
#ifndef VCOMPUTE_UAPI_H
#define VCOMPUTE_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* The device (protocol/src/device.rs). */
#define VCOMPUTE_DEVICE_ID 56
#define VCOMPUTE_F_CONFIG 0
#define VCOMPUTE_CONFIG_LEN 16
#define VCOMPUTE_API_OPENCL 1
#define VCOMPUTE_API_CUDA 2
#define VCOMPUTE_PROTOCOL_VERSION 1
#define VCOMPUTE_DEVICE_MAGIC 0x56444356 /* "VCDV", little-endian */
#define VCOMPUTE_DEVICE_HEADER_LEN 16
#define VCOMPUTE_STATUS_LEN 16
#define VCOMPUTE_OP_OPEN 1
#define VCOMPUTE_OP_CLOSE 2
#define VCOMPUTE_OP_SUBMIT 3
#define VCOMPUTE_CONTROL_QUEUE 0
#define VCOMPUTE_REQUEST_QUEUE 1

/* Device statuses (protocol::device::DeviceStatus). */
#define VCOMPUTE_STATUS_OK 0
#define VCOMPUTE_STATUS_BAD_CHAIN 1
#define VCOMPUTE_STATUS_UNKNOWN_SESSION 2
#define VCOMPUTE_STATUS_TOO_MANY_SESSIONS 3
#define VCOMPUTE_STATUS_WRONG_QUEUE 4
#define VCOMPUTE_STATUS_UNAVAILABLE 5

/* Protocol bounds (protocol/src/limits.rs). */
#define VCOMPUTE_MAX_REQUEST_AREA_LEN (20u << 20)
#define VCOMPUTE_MAX_DESCRIPTORS_PER_CHAIN 8192
#define VCOMPUTE_MAX_TABLE_ENTRIES 65536

/*
 * The driver's own bounds on one submit: bulk buffers (in and out
 * together), bytes of all bulk buffers, and the response buffer. Each is
 * far above what the shim sends and keeps what one call pins small.
 */
#define VCOMPUTE_MAX_BUFS 1024
#define VCOMPUTE_MAX_BULK_BYTES (64u << 20)
#define VCOMPUTE_MAX_RESPONSE_LEN (4u << 20)

/* The config space, when VCOMPUTE_F_CONFIG is negotiated (little-endian). */
struct vcompute_config {
	__le32 num_request_queues;
	__le32 max_sessions;
	__le32 api_families;
	__le32 protocol_version;
};

/* One user buffer. */
struct vcompute_buf {
	__u64 addr;
	__u64 len;
};

/* Submit flags. */
/* Busy-poll for the completion (up to the module's poll_us) before sleeping. */
#define VCOMPUTE_SUBMIT_POLL 1u

/*
 * One chain: the request frames (device-readable), the in-bulk buffers
 * (device-readable), the response buffer and the out-bulk buffers
 * (device-writable). On return (0), status is the device's status
 * (VCOMPUTE_STATUS_*) and response_len the bytes of response frames it
 * wrote. An error return (-1 with errno) means the chain was not run or
 * its outcome is unknown:
 *   EINVAL    a field is out of range or reserved is not zero
 *   E2BIG     the buffers need more descriptors than a chain may carry
 *   EFAULT    a buffer is not mapped (or not writable where it must be)
 *   ETIMEDOUT timeout_ms passed without a completion
 *   ENODEV    the device went away
 *   EIO       the device completed the chain with a bad status record
 */
struct vcompute_submit {
	__u32 queue;        /* in: VCOMPUTE_CONTROL_QUEUE or VCOMPUTE_REQUEST_QUEUE */
	__u32 flags;        /* in: VCOMPUTE_SUBMIT_* */
	__u64 req_addr;     /* in: concatenated request frames */
	__u64 req_len;      /* in: 1 ..= VCOMPUTE_MAX_REQUEST_AREA_LEN */
	__u64 resp_addr;    /* in: response area */
	__u64 resp_len;     /* in: 1 ..= VCOMPUTE_MAX_RESPONSE_LEN */
	__u64 in_bufs;      /* in: struct vcompute_buf[n_in] */
	__u64 out_bufs;     /* in: struct vcompute_buf[n_out] */
	__u32 n_in;         /* in */
	__u32 n_out;        /* in: n_in + n_out <= VCOMPUTE_MAX_BUFS */
	__u32 timeout_ms;   /* in: 0 waits until done (or killed) */
	__u32 status;       /* out: VCOMPUTE_STATUS_* */
	__u32 response_len; /* out: bytes written to the response area */
	__u32 reserved;     /* in: zero */
};

/* What the device says of itself, and this file's session. */
struct vcompute_info {
	__u32 num_request_queues;
	__u32 max_sessions;
	__u32 api_families;
	__u32 protocol_version;
	__u32 session;
	__u32 from_config; /* 1: read from the config space; 0: carrier defaults */
};

#define VCOMPUTE_IOC_MAGIC 'V'
#define VCOMPUTE_IOC_SUBMIT _IOWR(VCOMPUTE_IOC_MAGIC, 1, struct vcompute_submit)
#define VCOMPUTE_IOC_INFO _IOR(VCOMPUTE_IOC_MAGIC, 2, struct vcompute_info)

#endif /* VCOMPUTE_UAPI_H */
