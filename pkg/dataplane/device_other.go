//go:build !linux

package dataplane

import "golang.zx2c4.com/wireguard/tun"

// NewDevice wraps dev for the forwarder. Only Linux TUNs carry offloads
// (device_linux.go); elsewhere the device reads and writes plain packets.
func NewDevice(dev tun.Device) Device { return newPlainDevice(dev) }
