// Package loader plans and runs a load (or a validation) of a Hangar
// archive into a registry, by `hangar load` v1.9.4's rules.
//
// The data path of a load:
//
//  1. Open: the image list is read, the archive opened (archive.Reader),
//     and NewPlan decides everything before the first request: the lines
//     and their archive entries, the destination of each (checked as a
//     reference), the manifests that pass the platform filters and
//     --provenance, their tags (Hangar's per-platform tags, the
//     sha256-<subject>.att tag of BuildKit attestations), and the index
//     entries each entry adds. Each distinct manifest and config is read
//     once; bodies are not kept. Entries with one destination are one
//     Image.
//  2. Connect: the registry is probed (the login check, whose token is
//     the first the load uses), which settles the scheme; Harbor projects
//     are created for the images loaded, where the token does not already
//     prove them.
//  3. Prepare, per image, up to a window of images ahead: read the main
//     tag; HEAD each manifest (on Harbor, not those the tag's index lists:
//     Harbor keeps them); for a missing one, every blob goes through
//     one scheduler for the whole load (per repository and digest: HEAD
//     or upload for the first repository, mount for the others), streamed
//     from the archive and verified on the way.
//  4. Commit, in plan order, --jobs images at a time: push the manifests
//     (to their tags or by digest), then merge the index into what the tag
//     holds, entry by entry, push it when it changed, and read it back
//     (merging again if another writer changed it meanwhile).
//  5. Account: a Result per image (loaded, unchanged, failed,
//     interrupted, not attempted), the failed list with the reason of
//     each line, byte counts once every transfer has ended.
//
// The package never prints: it reports Events (Options.Events), which the
// command layer renders as Hangar's log lines, terminal bars or JSON. It
// reads through Source and writes through Registry and Repository, small
// interfaces that *archive.Reader and *oras.Registry implement and that
// tests may replace.
//
// References: architecture.md; hangar-load.md sections 2 and 3;
// decisions.md D3 and D4.
package loader
