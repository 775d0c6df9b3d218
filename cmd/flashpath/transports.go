package main

// The user-space host's transports register themselves when imported:
// discover, io and the bench's NVMe-oF engines reach controllers through them.
import (
	_ "github.com/flashpath/flashpath/initiator/rdma"
	_ "github.com/flashpath/flashpath/initiator/tcp"
)
