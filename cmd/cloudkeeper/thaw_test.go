package main

import (
	"testing"

	"github.com/cloudkeeper-backup/cloudkeeper/uploader"
)

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"laptop/a-b_c.txt": "laptop/a-b_c.txt",
		"a b":              "'a b'",
		"it's":             `'it'\''s'`,
		"new\nline'":       `$'new\nline\''`,
		"":                 "''",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}

// The command names the version of a history's object, and the endpoint
// of an S3-compatible server.
func TestThawCommand(t *testing.T) {
	got := thawCommand(target{Bucket: "my-backups"}, uploader.VersionRef{Key: "laptop/a b.txt", VersionID: "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"}, 7)
	if want := `aws s3api restore-object --bucket my-backups --key 'laptop/a b.txt' --version-id 3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY --restore-request Days=7`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got = thawCommand(target{Bucket: "b", Endpoint: "https://s3.example.net"}, uploader.VersionRef{Key: "k"}, 2)
	if want := `aws s3api restore-object --endpoint-url https://s3.example.net --bucket b --key k --restore-request Days=2`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
