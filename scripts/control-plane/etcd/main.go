// The etcd server command, built as a module of our own by ../build.sh, which writes this
// directory's go.mod (go.etcd.io/etcd/server/v3 at the version of the etcd client that the chosen
// Kubernetes release requires).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
