// Command docker-hangar is the docker hangar CLI plugin: `docker hangar load`
// loads Hangar archives into a registry. It also runs standalone as
// `docker-hangar load`.
package main

import (
	"os"

	"github.com/cnrancher/docker-hangar/plugin"
)

func main() {
	os.Exit(plugin.Main(os.Args[1:]))
}
