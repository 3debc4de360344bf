package manpage

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/goipsec/goipsec/config"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{`a\b`: `a\eb`, ".TH not a macro": `\&.TH not a macro`, "x\n'quote": "x\n\\&'quote"} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCommandPage(t *testing.T) {
	root := &cobra.Command{Use: "tool", Short: "does things", Long: "Tool does things.\n\n  indented example\n"}
	sub := &cobra.Command{Use: "go-now -c FILE", Short: "go", Run: func(*cobra.Command, []string) {}}
	sub.Flags().StringP("config", "c", "/etc/x", "the file")
	root.AddCommand(sub)
	p := Command(root, "")
	for _, want := range []string{".TH TOOL 8", ".SH NAME\ntool \\- does things", "go\\-now \\-c FILE", ".nf\n  indented example\n.fi",
		".SS \\fBgo\\-now\\fR", "\\fB\\-c, \\-\\-config\\fR \\fISTRING\\fR\nthe file (default: /etc/x)"} {
		if !strings.Contains(p.Content, want) {
			t.Errorf("page lacks %q:\n%s", want, p.Content)
		}
	}
}

func TestConfigPage(t *testing.T) {
	p := Config([]config.Key{{Path: "a.<name>.b", Default: "1", Doc: "B of a."}, {Path: "a.c", Support: config.NotSupported, Doc: "C."}}, "Intro.", "")
	for _, want := range []string{".TH GOIPSEC.CONF 5", "\\fBa.<name>.b\\fR [1]\nB of a.", "\\fBa.c\\fR\nC. (not supported yet)"} {
		if !strings.Contains(p.Content, want) {
			t.Errorf("page lacks %q:\n%s", want, p.Content)
		}
	}
}
