package bench

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
)

// fio prints its JSON with its own printer (json.c), and the report
// prints the same bytes for the same tree: two spaces per level, `"key" :
// value`, integers as %lld, floats always as %f (six decimals, so a
// float field stays a float to readers that care: 0.000000, not 0),
// strings with only '\' and '"' escaped, and no pair at all for an empty
// string (fio's json_create_value_string fails on "" and the pair is
// dropped, which is why bare options such as `thread` never appear under
// "job options").

// fioJSON writes v (a struct with json tags, orderedKV, slice, string,
// integer or float64) as fio's printer would.
func fioJSON(v any) string {
	var b strings.Builder
	writeFioValue(&b, reflect.ValueOf(v), 0)
	b.WriteByte('\n')
	return b.String()
}

func fioIndent(b *strings.Builder, level int) {
	for range level {
		b.WriteString("  ")
	}
}

// fioString is fio's strdup_escape: a backslash before '\' and '"', the
// rest as is.
func fioString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' || s[i] == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// fioFloat is C's %f; fio never prints a NaN or an infinity for a
// statistic, so neither does the report (they become 0).
func fioFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	return strconv.FormatFloat(f, 'f', 6, 64)
}

type fioPair struct {
	key string
	val reflect.Value
}

// writeFioObject prints pairs as an object whose pairs sit at level+1.
func writeFioObject(b *strings.Builder, pairs []fioPair, level int) {
	b.WriteString("{\n")
	for i, p := range pairs {
		if i > 0 {
			b.WriteString(",\n")
		}
		fioIndent(b, level+1)
		b.WriteString(fioString(p.key))
		b.WriteString(" : ")
		writeFioValue(b, p.val, level+1)
	}
	b.WriteString("\n")
	fioIndent(b, level)
	b.WriteString("}")
}

// omitted reports whether a pair with value v is left out: an empty
// string (as fio), or a nil pointer or empty string under omitempty.
func omitted(v reflect.Value, omitEmpty bool) bool {
	for v.Kind() == reflect.Interface && !v.IsNil() {
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.String:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	case reflect.Slice:
		return omitEmpty && v.IsNil()
	}
	return false
}

var orderedKVType = reflect.TypeFor[orderedKV]()

// structPairs appends the pairs of struct v's tagged fields (the fio tag,
// else the json tag), an embedded struct's fields inline (nil: none), as
// encoding/json does.
func structPairs(v reflect.Value, pairs []fioPair) []fioPair {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Anonymous {
			if fv.Kind() == reflect.Pointer {
				if fv.IsNil() {
					continue
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				pairs = structPairs(fv, pairs)
			}
			continue
		}
		tag, ok := f.Tag.Lookup("fio") // fio's name where the json tag cannot say it
		if !ok {
			tag = f.Tag.Get("json")
		}
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if omitted(fv, opts == "omitempty") {
			continue
		}
		pairs = append(pairs, fioPair{name, fv})
	}
	return pairs
}

func writeFioValue(b *strings.Builder, v reflect.Value, level int) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Type() == orderedKVType {
		var pairs []fioPair
		for _, e := range v.Interface().(orderedKV) {
			ev := reflect.ValueOf(e.v)
			if !omitted(ev, false) {
				pairs = append(pairs, fioPair{e.k, ev})
			}
		}
		writeFioObject(b, pairs, level)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		writeFioObject(b, structPairs(v, nil), level)
	case reflect.Slice, reflect.Array:
		b.WriteString("[\n")
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(",\n")
			}
			fioIndent(b, level+1)
			writeFioValue(b, v.Index(i), level+1)
		}
		b.WriteString("\n")
		fioIndent(b, level)
		b.WriteString("]")
	case reflect.String:
		b.WriteString(fioString(v.String()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		b.WriteString(fioFloat(v.Float()))
	case reflect.Bool: // fio has no booleans; flashpath's additions print 0/1
		if v.Bool() {
			b.WriteString("1")
		} else {
			b.WriteString("0")
		}
	default: // not a type the reports use; printed, not a panic after a run
		b.WriteString(fioString(fmt.Sprint(v.Interface())))
	}
}
