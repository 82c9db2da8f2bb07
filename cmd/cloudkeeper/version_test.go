package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersionSaysRevisionTimeAndModified(t *testing.T) {
	info := &debug.BuildInfo{
		Main: debug.Module{Path: "github.com/cloudkeeper-backup/cloudkeeper", Version: "v1.2.0"},
		Deps: []*debug.Module{
			{Path: "github.com/aws/aws-sdk-go-v2", Version: "v1.48.0"},
			{Path: "github.com/aws/aws-sdk-go-v2/service/s3", Version: "v1.114.10"},
			{Path: "github.com/aws/smithy-go", Version: "v1.28.9"},
		},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-03T09:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	want := "cloudkeeper v1.2.0 (revision 0123456789ab, 2026-12-03T09:00:00Z, modified)\n" +
		runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ", aws-sdk-go-v2 v1.48.0, aws-sdk-go-v2/service/s3 v1.114.10\n"
	if got := buildVersion(info); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	info.Settings = info.Settings[:1]
	if got := buildVersion(info); !strings.HasPrefix(got, "cloudkeeper v1.2.0 (revision 0123456789ab)\n") {
		t.Fatalf("a clean build: %q", got)
	}
	if got := buildVersion(nil); !strings.HasPrefix(got, "cloudkeeper (unknown)\n") {
		t.Fatalf("no build info: %q", got)
	}
}
