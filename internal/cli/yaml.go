package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DecodeYAMLFile decodes the YAML file at path into v, a pointer to a
// struct whose fields have yaml tags. It refuses, naming the line and the
// YAML key (logs[0].url), not Go's types: a key that v does not have, so
// that a misspelt or unsupported setting is an error rather than ignored;
// a value of the wrong kind (a duration without a unit, a fraction where a
// whole number goes); and a second YAML document in the file.
func DecodeYAMLFile(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("couldn't read the config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			return fmt.Errorf("couldn't parse %s: the file is empty", path)
		}
		return fmt.Errorf("couldn't parse %s: %w", path, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return fmt.Errorf("couldn't parse %s: line %d: a second YAML document: the configuration is one document (remove the '---')", path, next.Line)
	case err != io.EOF:
		return fmt.Errorf("couldn't parse %s: %w", path, err)
	}
	if errs := checkNode(&doc, reflect.TypeOf(v).Elem(), ""); len(errs) > 0 {
		return fmt.Errorf("couldn't parse %s: %w", path, errors.Join(errs...))
	}
	if err := doc.Decode(v); err != nil {
		return fmt.Errorf("couldn't parse %s: %w", path, err)
	}
	return nil
}

var durationType = reflect.TypeFor[time.Duration]()

// checkNode checks that n can be decoded into a value of type t: every
// key of a mapping is a field of the struct, every value is of its
// field's kind. path names n in errors.
func checkNode(n *yaml.Node, t reflect.Type, path string) []error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return checkNode(n.Content[0], t, path)
	case yaml.AliasNode:
		return checkNode(n.Alias, t, path)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	where := func() string {
		if path == "" {
			return fmt.Sprintf("line %d", n.Line)
		}
		return fmt.Sprintf("line %d: %s", n.Line, path)
	}
	switch {
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []error{fmt.Errorf("%s: want keys and values (a mapping)", where())}
		}
		fields := yamlFields(t)
		var errs []error
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				errs = append(errs, fmt.Errorf("line %d: %s: unknown key (want %s)", k.Line, join(path, k.Value), knownKeys(t)))
				continue
			}
			errs = append(errs, checkNode(val, f.Type, join(path, k.Value))...)
		}
		return errs
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return []error{fmt.Errorf("%s: want a list", where())}
		}
		var errs []error
		for i, c := range n.Content {
			errs = append(errs, checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case t.Kind() == reflect.Map || t.Kind() == reflect.Interface:
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return []error{fmt.Errorf("%s: want %s", where(), describe(t))}
	}
	ok := n.Decode(reflect.New(t).Interface()) == nil
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if t != durationType && n.ShortTag() != "!!int" {
			ok = false
		}
	}
	if !ok {
		return []error{fmt.Errorf("%s: %q is not %s", where(), n.Value, describe(t))}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe says what a value of type t looks like in YAML.
func describe(t reflect.Type) string {
	if t == durationType {
		return "a duration: a number with a unit, such as 500ms, 10s, 5m or 1h30m"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number, 0 or more"
	case reflect.Bool:
		return "true or false"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return "a value of another kind"
}

// yamlFields returns t's fields by their YAML key.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}

// knownKeys lists t's YAML keys, in the order of its fields.
func knownKeys(t reflect.Type) string {
	fields := yamlFields(t)
	var keys []string
	for i := range t.NumField() {
		for k, f := range fields {
			if f.Index[0] == i {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) > 1 {
		return strings.Join(keys[:len(keys)-1], ", ") + " or " + keys[len(keys)-1]
	}
	return strings.Join(keys, "")
}
