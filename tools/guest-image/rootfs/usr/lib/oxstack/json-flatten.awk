# Flatten a JSON document into one line per scalar: "PATH<TAB>VALUE".
#
# PATH joins object keys and array indexes (from 0) with "/", so
# {"public_keys": {"k1": "ssh-ed25519 AAAA"}, "keys": [{"type": "ssh"}]}
# prints "public_keys/k1<TAB>ssh-ed25519 AAAA" and "keys/0/type<TAB>ssh".
# String values are decoded, then backslash, newline and tab are written as
# \\, \n and \t so that every record stays on one line (printf %b reverses it).
# Numbers, true, false and null are printed as they appear in the input.
# Empty objects and arrays print nothing. On invalid JSON the script prints
# "json-flatten: ..." to stderr and exits 1.
#
# Written for busybox awk, which has no JSON support; runs on any POSIX awk.

BEGIN {
    text = ""
}

{
    text = text $0 "\n"
}

END {
    pos = 1
    len = length(text)
    parse_value("")
    skip_space()
    if (pos <= len)
        fail("unexpected data after the top-level value")
    exit 0
}

function fail(message) {
    printf "json-flatten: invalid JSON at character %d: %s\n", pos, message > "/dev/stderr"
    exit 1
}

function skip_space(    c) {
    while (pos <= len) {
        c = substr(text, pos, 1)
        if (c != " " && c != "\t" && c != "\n" && c != "\r")
            break
        pos++
    }
}

function join_path(parent, child) {
    return parent == "" ? child : parent "/" child
}

function emit(path, value) {
    gsub(/\\/, "\\\\", value)
    gsub(/\n/, "\\n", value)
    gsub(/\t/, "\\t", value)
    print path "\t" value
}

function parse_value(path,    c) {
    skip_space()
    if (pos > len)
        fail("unexpected end of input")
    c = substr(text, pos, 1)
    if (c == "{")
        parse_object(path)
    else if (c == "[")
        parse_array(path)
    else if (c == "\"")
        emit(path, parse_string())
    else
        emit(path, parse_literal())
}

function parse_object(path,    key, c) {
    pos++
    skip_space()
    if (substr(text, pos, 1) == "}") {
        pos++
        return
    }
    while (1) {
        skip_space()
        if (substr(text, pos, 1) != "\"")
            fail("expected a string key")
        key = parse_string()
        skip_space()
        if (substr(text, pos, 1) != ":")
            fail("expected ':' after key \"" key "\"")
        pos++
        parse_value(join_path(path, key))
        skip_space()
        c = substr(text, pos, 1)
        pos++
        if (c == "}")
            return
        if (c != ",")
            fail("expected ',' or '}' in object")
    }
}

function parse_array(path,    item_index, c) {
    pos++
    skip_space()
    if (substr(text, pos, 1) == "]") {
        pos++
        return
    }
    item_index = 0
    while (1) {
        parse_value(join_path(path, item_index))
        item_index++
        skip_space()
        c = substr(text, pos, 1)
        pos++
        if (c == "]")
            return
        if (c != ",")
            fail("expected ',' or ']' in array")
    }
}

function parse_literal(    rest) {
    rest = substr(text, pos)
    if (!match(rest, /^(-?[0-9][0-9.eE+-]*|true|false|null)/))
        fail("expected a value")
    pos += RLENGTH
    return substr(rest, 1, RLENGTH)
}

# Convert 4 hex digits to a number.
function hex_value(digits,    i, result) {
    result = 0
    digits = tolower(digits)
    for (i = 1; i <= length(digits); i++)
        result = result * 16 + index("0123456789abcdef", substr(digits, i, 1)) - 1
    return result
}

# Encode a Unicode code point as UTF-8.
function utf8(code) {
    if (code < 128)
        return sprintf("%c", code)
    if (code < 2048)
        return sprintf("%c%c", 192 + int(code / 64), 128 + code % 64)
    if (code < 65536)
        return sprintf("%c%c%c", 224 + int(code / 4096), 128 + int(code / 64) % 64, 128 + code % 64)
    return sprintf("%c%c%c%c", 240 + int(code / 262144), 128 + int(code / 4096) % 64,
                   128 + int(code / 64) % 64, 128 + code % 64)
}

# Read the string that starts at pos (on its opening quote) and return it decoded.
function parse_string(    out, c, rest, code, low) {
    pos++
    out = ""
    while (1) {
        if (pos > len)
            fail("unterminated string")
        rest = substr(text, pos)
        # Copy a run of ordinary characters in one step.
        if (match(rest, /^[^"\\]+/)) {
            out = out substr(rest, 1, RLENGTH)
            pos += RLENGTH
            continue
        }
        c = substr(text, pos, 1)
        if (c == "\"") {
            pos++
            return out
        }
        # c is a backslash.
        c = substr(text, pos + 1, 1)
        pos += 2
        if (c == "n") out = out "\n"
        else if (c == "t") out = out "\t"
        else if (c == "r") out = out "\r"
        else if (c == "b") out = out "\b"
        else if (c == "f") out = out "\f"
        else if (c == "/" || c == "\\" || c == "\"") out = out c
        else if (c == "u") {
            if (!match(substr(text, pos, 4), /^[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]$/))
                fail("invalid \\u escape")
            code = hex_value(substr(text, pos, 4))
            pos += 4
            # A high surrogate followed by a low surrogate encodes one code point.
            if (code >= 55296 && code < 56320 && substr(text, pos, 2) == "\\u") {
                low = hex_value(substr(text, pos + 2, 4))
                if (low >= 56320 && low < 57344) {
                    code = 65536 + (code - 55296) * 1024 + (low - 56320)
                    pos += 6
                }
            }
            out = out utf8(code)
        }
        else
            fail("invalid escape \\" c)
    }
}
