package main

// Bench engines that live outside package bench register themselves when imported.
import (
	_ "github.com/flashpath/flashpath/bench/fabrics"
	_ "github.com/flashpath/flashpath/bench/gpu"
)
