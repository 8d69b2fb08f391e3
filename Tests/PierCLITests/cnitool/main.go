// A minimal cnitool-alike over Debian's libcni, written for Pier's interop check (not cnitool's code).
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: cnitool add|check|del NET NETNS")
		os.Exit(2)
	}
	verb, name, netns := os.Args[1], os.Args[2], os.Args[3]
	confDir := os.Getenv("NETCONFPATH")
	if confDir == "" {
		confDir = "/etc/cni/net.d"
	}
	list, err := libcni.LoadConfList(confDir, name)
	if err != nil {
		fail(err)
	}
	ifName := os.Getenv("CNI_IFNAME")
	if ifName == "" {
		ifName = "eth0"
	}
	sum := sha512.Sum512([]byte(netns))
	rt := &libcni.RuntimeConf{
		ContainerID: fmt.Sprintf("cnitool-%x", sum[:10]),
		NetNS:       netns,
		IfName:      ifName,
	}
	if caps := os.Getenv("CAP_ARGS"); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fail(err)
		}
	}
	if args := os.Getenv("CNI_ARGS"); args != "" {
		for _, pair := range strings.Split(args, ";") {
			kv := strings.SplitN(pair, "=", 2)
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.TODO()
	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		_ = result.Print()
	case "check":
		err = cni.CheckNetworkList(ctx, list, rt)
	case "del":
		err = cni.DelNetworkList(ctx, list, rt)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
