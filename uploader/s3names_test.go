package uploader

import (
	"strings"
	"testing"
)

func TestCheckBucketName(t *testing.T) {
	for _, name := range []string{
		"abc", "my-bucket", "my.bucket.2024", strings.Repeat("a", 63), "0bucket9",
		// Legacy us-east-1 names (and Ceph's relaxed ones): the server judges.
		"My_Bucket", "UPPER", strings.Repeat("a", 255), "a_b",
		// Broken rules of new AWS buckets that older names may break.
		"backup-", "legacy_", "a..b", "bucket.",
	} {
		if err := CheckBucketName(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, c := range []struct{ name, want string }{
		{"", "it has 0 characters, a bucket name has 3 to 63"},
		{"ck", "it has 2 characters, a bucket name has 3 to 63"},
		{strings.Repeat("a", 256), "it has 256 characters"},
		{"my/bucket", `"/" is not allowed`},
		{"my bucket", `" " is not allowed`},
		{"büro", `"ü" is not allowed`},
		{"-bucket", "must start with a letter or a digit"},
		{"_bucket", "must start with a letter or a digit"},
		{"192.168.1.10", "the form of an IP address"},
	} {
		err := CheckBucketName(c.name)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "bucket name ") {
			t.Errorf("%q: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for _, ok := range []string{
		"http://127.0.0.1:9000", "https://s3.example.com", "http://[::1]:9000", "https://r2.example.com/",
		"http://localhost:9000/s3", "HTTPS://Example.COM",
	} {
		if err := CheckEndpoint(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, c := range []struct{ endpoint, want string }{
		{"127.0.0.1:43843", `endpoint "127.0.0.1:43843" has no scheme: write http://127.0.0.1:43843 (or https://127.0.0.1:43843 if the server uses TLS)`},
		{"minio.local", "has no scheme: write http://minio.local"},
		{"ftp://example.com", "the scheme must be http or https"},
		{"http://", "has no host"},
		{"http://:9000", "has no host"},
		{"http://exa mple.com", `is not a URL: invalid character " " in host name`},
		{"http://example.com:x", "is not a URL"},
		{"http://example.com/?a=b", "a query or fragment"},
		{"http://example.com#top", "a query or fragment"},
		{"https://key:hunter2@example.com", "the endpoint has a user name or password in it"},
		{"key:hunter2@example.com:9000", "the endpoint has a user name or password in it"},
		{"http://key:hun ter2@example.com", "the endpoint has a user name or password in it"},
		// A secret key may hold '/': it must not end the user info early.
		{"http://AKIAX:wJalrXUtn/FEMIK7MDENG@example.com:9000", "the endpoint has a user name or password in it"},
	} {
		err := CheckEndpoint(c.endpoint)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error with %q", c.endpoint, err, c.want)
		}
		if err != nil && (strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "FEMIK")) {
			t.Errorf("%q: the password is in the error: %v", c.endpoint, err)
		}
	}
}
