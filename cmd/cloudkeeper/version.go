package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// versionCommand prints which build this is (see buildVersion).
func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version: cloudkeeper's (and its VCS revision), Go's and the AWS SDK's",
		Action: func(c *cli.Context) error {
			printVersion(c.App.Writer)
			return nil
		},
	}
}

func printVersion(w io.Writer) {
	info, _ := debug.ReadBuildInfo()
	fmt.Fprint(w, buildVersion(info))
}

// buildVersion is what the build recorded, in two lines:
//
//	cloudkeeper v1.2.0 (revision 0123456789ab, 2026-12-03T09:00:00Z, modified)
//	go1.26.8 linux/amd64, aws-sdk-go-v2 v1.48.0, aws-sdk-go-v2/service/s3 v1.114.10
func buildVersion(info *debug.BuildInfo) string {
	version, vcs, deps := "(unknown)", []string{}, []string{}
	if info != nil {
		version = info.Main.Version
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if rev := settings["vcs.revision"]; rev != "" {
			vcs = append(vcs, "revision "+rev[:min(12, len(rev))])
		}
		if t := settings["vcs.time"]; t != "" {
			vcs = append(vcs, t)
		}
		if settings["vcs.modified"] == "true" {
			vcs = append(vcs, "modified")
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/aws/aws-sdk-go-v2" || d.Path == "github.com/aws/aws-sdk-go-v2/service/s3" {
				deps = append(deps, strings.TrimPrefix(d.Path, "github.com/aws/")+" "+d.Version)
			}
		}
	}
	line := "cloudkeeper " + version
	if len(vcs) > 0 {
		line += " (" + strings.Join(vcs, ", ") + ")"
	}
	goLine := strings.Join(append([]string{runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH}, deps...), ", ")
	return line + "\n" + goLine + "\n"
}
