// Command etcd is the etcd server of the release pinned in go.mod, for the kwok
// control plane of dualchain's end-to-end tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
