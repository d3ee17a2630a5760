// Command hangar-mkarchive writes a Hangar-style archive (the zip written by
// `hangar save`) with generated content, for the demo and the benchmark.
//
//	hangar-mkarchive -o demo.zip
//	hangar-mkarchive -o bench.zip -images 30 -projects 4 -size 300 [-seed 1]
//
// Without -images (or -size) it writes the small demo set
// (archivetest.Demo): five images over three projects, linux/amd64 and
// linux/arm64 with attestations, one in Docker format, a chart and a file.
// With them it writes archivetest.Synthetic: images with shared base and
// project layers, attestations, about -size MiB of blobs.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
)

func main() {
	out := flag.String("o", "", "archive to write (required)")
	images := flag.Int("images", 0, "number of images of a synthetic archive (default: the demo set; 30 when -size is given)")
	projects := flag.Int("projects", 4, "projects the synthetic images are spread over")
	size := flag.Int64("size", 0, "approximate total blob size of a synthetic archive, in MiB (default 300)")
	seed := flag.Int64("seed", 1, "content seed of a synthetic archive")
	quiet := flag.Bool("q", false, "do not print a summary")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: hangar-mkarchive -o ARCHIVE [-images N -projects P -size MiB -seed S]")
		os.Exit(2)
	}
	set := archivetest.Demo()
	kind := "demo"
	if *images > 0 || *size > 0 {
		set = archivetest.Synthetic(archivetest.SyntheticOptions{Images: *images, Projects: *projects, Size: *size << 20, Seed: *seed})
		kind = "synthetic"
	}
	w, err := archivetest.Write(*out, set, archivetest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hangar-mkarchive:", err)
		os.Exit(1)
	}
	if *quiet {
		return
	}
	var bytes int64
	for _, n := range w.Blobs {
		bytes += n
	}
	manifests := 0
	for _, img := range w.Images {
		manifests += len(img.Manifests)
	}
	fi, _ := os.Stat(*out)
	fmt.Printf("wrote %s (%s): %d index entries, %d manifests, %d blobs, %.1f MiB of blobs, %.1f MiB file\n",
		*out, kind, len(w.Index.List), manifests, len(w.Blobs), float64(bytes)/(1<<20), float64(fi.Size())/(1<<20))
}
