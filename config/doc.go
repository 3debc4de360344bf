// Package config reads goipsec's configuration, written in strongSwan's swanctl.conf syntax so that
// strongSwan users feel at home, and turns it into a typed, validated model.
//
// The parser is hand-written: no Go library reads strongSwan's settings format, and goipsec wants
// errors with file and line that say what was expected. It has two layers.
//
// # Syntax (Parse, ParseFile → Tree)
//
// The grammar is strongswan.conf(5)'s:
//
//	name {            a section; the "{" may also stand on the next line
//	    key = value   a setting; the value runs to the end of the line, a "#" or a "}"
//	}
//	include PATTERN   include files, see below
//	# comment         to the end of the line, anywhere outside quotes
//
// Values are trimmed; blanks between words collapse to one space; an empty value ("key =") is
// allowed and means "use the default". A value may be double-quoted to keep "#", "}" or spacing;
// inside quotes \n, \r and \t are escapes, a backslash before a line break joins the lines, and a
// backslash before any other character stands for that character (\" and \\). A quoted string may
// span lines. Several values on one line are not possible: "a = 1 b = 2" sets a to "1 b = 2", as in
// strongSwan.
//
// Names of sections and keys may contain any printable character except . , : { } = " # and
// blanks, as strongSwan documents. Section references ("conn : defaults { }") are refused as not
// supported yet.
//
// A section opened again — later in the file or in an included file — continues the first one:
// settings are added, a key assigned again takes the new value (the last assignment wins, as in
// strongSwan), and subsections merge the same way. A merged section keeps the position where it was
// first opened; a setting carries the position of the assignment in effect.
//
// "include PATTERN" reads files into the section the include stands in. A relative pattern is
// relative to the directory of the including file. The pattern is a glob (* ? [...]); matches are
// read in sorted order. A pattern with wildcards may match nothing; a plain file name must exist,
// as in strongSwan. Include loops are errors, and each file must close the sections it opens.
//
// # Model (Load, FromTree → Config)
//
// The tree is checked against the table of keys (Keys), which is also the source of
// docs/configuration.md. Every key either works, is accepted with no effect yet (documented), is
// accepted only with its default value, or is refused by name as "not supported by goipsec yet";
// unknown keys are refused with a "did you mean" suggestion. All problems are reported at once,
// each as an *Error with file and line.
package config
