package redact

import (
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKIAIOSFODNN7EXAMPLE",
		"AWS_ACCESS_KEY":        "test",
		"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"AWS_SESSION_TOKEN":     "FwoGZXIvYXdzEBYaDHqa0AP1ExampleTokenValue",
	}
	var out strings.Builder
	w := &Writer{W: &out, Getenv: func(k string) string { return env[k] }}
	in := "ERROR upload path=test_930.h key=AKIAIOSFODNN7EXAMPLE/a secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY token=FwoGZXIvYXdzEBYaDHqa0AP1ExampleTokenValue\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write: %d, %v; want %d, nil", n, err, len(in))
	}
	want := "ERROR upload path=test_930.h key=AKIAIOSFODNN7EXAMPLE/a secret=[redacted AWS_SECRET_ACCESS_KEY] token=[redacted AWS_SESSION_TOKEN]\n"
	if out.String() != want {
		t.Fatalf("got  %q\nwant %q", out.String(), want)
	}
}

// A short value is no secret worth garbling paths for; one of MinLen
// characters is hidden. A value set after the Writer was made (from a
// .env file) is hidden too.
func TestWriterMinLenAndLateValues(t *testing.T) {
	env := map[string]string{"AWS_SECRET_ACCESS_KEY": "secret"}
	var out strings.Builder
	w := &Writer{W: &out, Getenv: func(k string) string { return env[k] }}
	w.Write([]byte("path=secret_notes.txt\n"))
	env["AWS_SECRET_ACCESS_KEY"] = "12345678"
	w.Write([]byte("path=a12345678b\n"))
	if want := "path=secret_notes.txt\npath=a[redacted AWS_SECRET_ACCESS_KEY]b\n"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}
