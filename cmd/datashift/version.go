package main

import "runtime/debug"

// version is the release, set at link time by the Makefile's build target
// (-ldflags "-X main.version=…"). Empty, versionString asks the build info.
var version string

// versionString is what --version prints: the linked-in version; else the
// module version `go install …@vX.Y.Z` recorded; else the VCS revision a
// build in a checkout recorded (with "-dirty" for uncommitted changes);
// else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev + dirty
}
