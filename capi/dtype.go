//go:build cgo

package main

import "github.com/flashpath/flashpath/gds/safetensors"

func safetensorsDType(s string) safetensors.DType { return safetensors.DType(s) }
