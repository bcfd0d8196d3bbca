package dev.isthmus.proxy.config.xds;

import com.google.protobuf.CodedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Reads protobuf's JSON mapping (proto3 JSON, as Envoy's bootstrap files use it) into the wire form of
 * the proxies' lite xDS messages, which have no descriptors to parse JSON with. The input is the tree
 * YAML loads ({@link YamlJson}): maps, lists, strings, numbers, booleans and nulls.
 *
 * <p>What it knows of each message comes from a schema that {@code HonouredProtos} writes beside the
 * protos ({@value #SCHEMA_RESOURCE}): field names (the proto name and the lowerCamel JSON name),
 * numbers, types, oneofs and enum values. It follows protobuf's JSON parser ({@code JsonFormat}), which
 * the proxies used before their messages were lite and which tests compare it with: a field the
 * message does not know is refused by name, as is a second member of one oneof; {@code null} leaves a
 * field unset; 64-bit integers may be strings; enums are names or numbers; and the well-known types
 * have their own forms ({@code Any} with {@code @type}, {@code Duration} as {@code "1.5s"}, wrappers as
 * their value, {@code Struct}, {@code Value} and {@code ListValue} as any JSON).
 */
final class ProtoJson {

    /** The schema's resource name on the class path. */
    static final String SCHEMA_RESOURCE = "dev/isthmus/proxy/config/xds/honoured.schema";

    private static final Pattern DURATION = Pattern.compile("(-)?(\\d+)(?:\\.(\\d{1,9}))?s");
    private static final long MAX_DURATION_SECONDS = 315_576_000_000L;
    private static final BigInteger MAX_UINT64 = BigInteger.ONE.shiftLeft(64).subtract(BigInteger.ONE);

    /** What is wrong, and where in the document (a path of field names and indexes). */
    static final class JsonError extends Exception {
        JsonError(String what, String path) {
            super(path.isEmpty() ? what : what + " (at " + path + ")");
        }
    }

    private record Field(String name, String json, int number, char label, String keyType, String type, String typeName, String oneof) {
    }

    private record Message(String name, Map<String, Field> byName) {
    }

    /** A field as the document gives it, with where. */
    private record Given(Field field, Object value, String path) {
    }

    private static final class Schema {
        static final Map<String, Message> MESSAGES = new HashMap<>();
        static final Map<String, Map<String, Integer>> ENUMS = new HashMap<>();

        static {
            try (InputStream in = ProtoJson.class.getClassLoader().getResourceAsStream(SCHEMA_RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException(SCHEMA_RESOURCE + " is not on the class path");
                }
                Message current = null;
                for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                    String[] p = line.split(" ");
                    switch (p[0]) {
                        case "M" -> {
                            current = new Message(p[1], new HashMap<>());
                            MESSAGES.put(p[1], current);
                        }
                        case "F" -> {
                            var f = new Field(p[1], p[2], Integer.parseInt(p[3]), p[4].charAt(0), p[5], p[6], p[7], p[8]);
                            current.byName().put(f.name(), f);
                            current.byName().put(f.json(), f);
                        }
                        case "E" -> {
                            var values = new HashMap<String, Integer>();
                            for (int i = 2; i < p.length; i++) {
                                int eq = p[i].indexOf('=');
                                values.put(p[i].substring(0, eq), Integer.parseInt(p[i].substring(eq + 1)));
                            }
                            ENUMS.put(p[1], values);
                        }
                        default -> {
                            // a comment or a blank line
                        }
                    }
                }
            } catch (IOException e) {
                throw new IllegalStateException("cannot read " + SCHEMA_RESOURCE, e);
            }
        }
    }

    private ProtoJson() {
    }

    /** The wire form of {@code tree} read as the message {@code type} (a full name, such as {@code envoy.config.listener.v3.Listener}). */
    static byte[] encode(Object tree, String type, String path) throws JsonError {
        Message m = Schema.MESSAGES.get(type);
        if (m == null) {
            throw new IllegalArgumentException("no message " + type + " in " + SCHEMA_RESOURCE);
        }
        return message(tree, m, path);
    }

    private static byte[] message(Object node, Message m, String path) throws JsonError {
        switch (m.name()) {
            case "google.protobuf.Any" -> {
                return any(node, path);
            }
            case "google.protobuf.Duration" -> {
                return duration(node, path);
            }
            case "google.protobuf.Struct" -> {
                return struct(node, path);
            }
            case "google.protobuf.Value" -> {
                return value(node, path);
            }
            case "google.protobuf.ListValue" -> {
                return listValue(node, path);
            }
            default -> {
                if (wrapper(m.name())) { // its value alone
                    return write(out -> field(out, m.byName().get("value"), node, path));
                }
            }
        }
        if (!(node instanceof Map<?, ?> map)) {
            throw new JsonError("Expect message object but got: " + show(node) + " for " + m.name(), path);
        }
        var seen = new HashMap<Integer, String>();
        var oneofs = new HashMap<String, String>();
        var given = new java.util.ArrayList<Given>();
        for (var e : map.entrySet()) {
            String key = String.valueOf(e.getKey());
            Field f = m.byName().get(key);
            if (f == null) {
                throw new JsonError("Cannot find field: " + key + " in message " + m.name(), path);
            }
            String at = join(path, f.name());
            if (seen.put(f.number(), key) != null) {
                throw new JsonError("Field " + m.name() + "." + f.name() + " has already been set", at);
            }
            if (e.getValue() == null && !f.typeName().equals("google.protobuf.Value")) {
                continue; // null: the field stays unset, as protobuf's JSON parser leaves it
            }
            if (!f.oneof().equals("-")) {
                String other = oneofs.putIfAbsent(f.oneof(), f.name());
                if (other != null) {
                    throw new JsonError("Cannot set field " + f.name() + " because another field " + other + " belonging to the same oneof ("
                            + f.oneof() + ") has already been set", at);
                }
            }
            given.add(new Given(f, e.getValue(), at));
        }
        given.sort((a, b) -> Integer.compare(a.field().number(), b.field().number()));
        return write(out -> {
            for (Given g : given) {
                field(out, g.field(), g.value(), g.path());
            }
        });
    }

    private static void field(CodedOutputStream out, Field f, Object node, String path) throws JsonError, IOException {
        switch (f.label()) {
            case 'r' -> {
                if (!(node instanceof List<?> list)) {
                    throw new JsonError("Expected an array for " + f.name() + " but found " + show(node), path);
                }
                for (int i = 0; i < list.size(); i++) {
                    if (list.get(i) == null && !f.typeName().equals("google.protobuf.Value")) {
                        throw new JsonError("Repeated field elements cannot be null in field: " + f.name(), path + "[" + i + "]");
                    }
                    single(out, f.number(), f.type(), f.typeName(), list.get(i), path + "[" + i + "]");
                }
            }
            case 'm' -> {
                if (!(node instanceof Map<?, ?> map)) {
                    throw new JsonError("Expect a map object for " + f.name() + " but found " + show(node), path);
                }
                for (var e : map.entrySet()) {
                    String key = String.valueOf(e.getKey());
                    String at = path + "[" + key + "]";
                    if (e.getValue() == null && !f.typeName().equals("google.protobuf.Value")) {
                        throw new JsonError("Map value cannot be null", at);
                    }
                    Object value = e.getValue();
                    out.writeByteArray(f.number(), write(entry -> {
                        single(entry, 1, f.keyType(), "-", key, at);
                        single(entry, 2, f.type(), f.typeName(), value, at);
                    }));
                }
            }
            default -> {
                if (f.label() == 'o' && f.oneof().equals("-") && isDefault(f, node)) {
                    return; // a proto3 scalar without presence: its default is not written, as protobuf's serializer leaves it out
                }
                single(out, f.number(), f.type(), f.typeName(), node, path);
            }
        }
    }

    /** Whether a scalar holds its type's default (false where it cannot be read: writing it then says what is wrong). */
    private static boolean isDefault(Field f, Object node) {
        try {
            return switch (f.type()) {
                case "message" -> false;
                case "string" -> node instanceof String s && s.isEmpty();
                case "bool" -> Boolean.FALSE.equals(node) || "false".equals(node);
                case "enum" -> enumValue(node, f.typeName(), "") == 0;
                case "double", "float" -> Double.doubleToRawLongBits(real(node, f.type(), "")) == 0;
                case "bytes" -> bytes(node, "").length == 0;
                default -> integer(node, BigInteger.valueOf(Long.MIN_VALUE), MAX_UINT64, f.type(), "").signum() == 0;
            };
        } catch (JsonError e) {
            return false;
        }
    }

    private static void single(CodedOutputStream out, int number, String type, String typeName, Object node, String path)
            throws JsonError, IOException {
        switch (type) {
            case "message" -> {
                Message m = Schema.MESSAGES.get(typeName);
                out.writeByteArray(number, message(node, m, path));
            }
            case "enum" -> out.writeEnum(number, enumValue(node, typeName, path));
            case "string" -> {
                if (node instanceof Map || node instanceof List || node == null) {
                    throw new JsonError("Expected a string but found " + show(node), path);
                }
                out.writeString(number, String.valueOf(node));
            }
            case "bool" -> {
                if (node instanceof Boolean b) {
                    out.writeBool(number, b);
                } else if ("true".equals(node) || "false".equals(node)) {
                    out.writeBool(number, node.equals("true"));
                } else {
                    throw new JsonError("Invalid bool value: " + show(node), path);
                }
            }
            case "int32" -> out.writeInt32(number, (int) integer(node, BigInteger.valueOf(Integer.MIN_VALUE), BigInteger.valueOf(Integer.MAX_VALUE),
                    type, path).longValue());
            case "sint32" -> out.writeSInt32(number, (int) integer(node, BigInteger.valueOf(Integer.MIN_VALUE),
                    BigInteger.valueOf(Integer.MAX_VALUE), type, path).longValue());
            case "sfixed32" -> out.writeSFixed32(number, (int) integer(node, BigInteger.valueOf(Integer.MIN_VALUE),
                    BigInteger.valueOf(Integer.MAX_VALUE), type, path).longValue());
            case "uint32" -> out.writeUInt32(number, (int) integer(node, BigInteger.ZERO, BigInteger.valueOf(0xFFFF_FFFFL), type, path).longValue());
            case "fixed32" -> out.writeFixed32(number, (int) integer(node, BigInteger.ZERO, BigInteger.valueOf(0xFFFF_FFFFL), type, path).longValue());
            case "int64" -> out.writeInt64(number, integer(node, BigInteger.valueOf(Long.MIN_VALUE), BigInteger.valueOf(Long.MAX_VALUE), type, path)
                    .longValue());
            case "sint64" -> out.writeSInt64(number, integer(node, BigInteger.valueOf(Long.MIN_VALUE), BigInteger.valueOf(Long.MAX_VALUE), type, path)
                    .longValue());
            case "sfixed64" -> out.writeSFixed64(number, integer(node, BigInteger.valueOf(Long.MIN_VALUE), BigInteger.valueOf(Long.MAX_VALUE), type,
                    path).longValue());
            case "uint64" -> out.writeUInt64(number, integer(node, BigInteger.ZERO, MAX_UINT64, type, path).longValue());
            case "fixed64" -> out.writeFixed64(number, integer(node, BigInteger.ZERO, MAX_UINT64, type, path).longValue());
            case "double" -> out.writeDouble(number, real(node, type, path));
            case "float" -> {
                double d = real(node, type, path);
                if (!Double.isInfinite(d) && Math.abs(d) > Float.MAX_VALUE) {
                    throw new JsonError("Out of range float value: " + show(node), path);
                }
                out.writeFloat(number, (float) d);
            }
            case "bytes" -> out.writeByteArray(number, bytes(node, path));
            default -> throw new IllegalStateException("type " + type + " in " + SCHEMA_RESOURCE);
        }
    }

    private static int enumValue(Object node, String typeName, String path) throws JsonError {
        if (node instanceof Integer || node instanceof Long) {
            long v = ((Number) node).longValue();
            if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
                return (int) v; // proto3 enums are open: a number not named is kept
            }
        } else if (node instanceof String s) {
            Integer v = Schema.ENUMS.get(typeName).get(s);
            if (v != null) {
                return v;
            }
            try {
                return Integer.parseInt(s.strip()); // a number in a string, as protobuf's JSON parser also reads it
            } catch (NumberFormatException e) {
                // below
            }
        }
        throw new JsonError("Invalid enum value: " + show(node) + " for enum type: " + typeName, path);
    }

    private static BigInteger integer(Object node, BigInteger min, BigInteger max, String type, String path) throws JsonError {
        BigInteger v = null;
        if (node instanceof Integer || node instanceof Long) {
            v = BigInteger.valueOf(((Number) node).longValue());
        } else if (node instanceof BigInteger b) {
            v = b;
        } else if (node instanceof Double || node instanceof String) {
            try {
                v = new BigDecimal(node.toString().strip()).toBigIntegerExact();
            } catch (ArithmeticException | NumberFormatException e) {
                v = null;
            }
        }
        if (v == null || v.compareTo(min) < 0 || v.compareTo(max) > 0) {
            throw new JsonError("Not an " + type + " value: " + show(node), path);
        }
        return v;
    }

    private static double real(Object node, String type, String path) throws JsonError {
        if (node instanceof Number n) {
            return n.doubleValue();
        }
        if (node instanceof String s) {
            switch (s) {
                case "NaN" -> {
                    return Double.NaN;
                }
                case "Infinity" -> {
                    return Double.POSITIVE_INFINITY;
                }
                case "-Infinity" -> {
                    return Double.NEGATIVE_INFINITY;
                }
                default -> {
                    try {
                        return new BigDecimal(s.strip()).doubleValue();
                    } catch (NumberFormatException e) {
                        // below
                    }
                }
            }
        }
        throw new JsonError("Not a " + type + " value: " + show(node), path);
    }

    private static byte[] bytes(Object node, String path) throws JsonError {
        if (node instanceof byte[] b) {
            return b; // YAML's !!binary
        }
        if (node instanceof String s) {
            try {
                return Base64.getDecoder().decode(s);
            } catch (IllegalArgumentException e) {
                try {
                    return Base64.getUrlDecoder().decode(s);
                } catch (IllegalArgumentException e2) {
                    // below
                }
            }
        }
        throw new JsonError("Not a base64 value: " + show(node), path);
    }

    // ----- the well-known types' own JSON forms -----

    private static byte[] any(Object node, String path) throws JsonError {
        if (!(node instanceof Map<?, ?> map)) {
            throw new JsonError("Expect message object but got: " + show(node) + " for google.protobuf.Any", path);
        }
        if (map.isEmpty()) {
            return new byte[0];
        }
        if (!(map.get("@type") instanceof String url)) {
            throw new JsonError("Missing type url when parsing: " + show(node), path);
        }
        String name = url.substring(url.lastIndexOf('/') + 1);
        Message m = Schema.MESSAGES.get(name);
        if (m == null || url.indexOf('/') < 0) {
            throw new JsonError("Cannot resolve type: " + url, join(path, "@type"));
        }
        byte[] value;
        if (special(name)) {
            value = message(map.get("value"), m, join(path, "value"));
        } else {
            var rest = new java.util.LinkedHashMap<Object, Object>(map);
            rest.remove("@type");
            value = message(rest, m, path);
        }
        return write(out -> {
            out.writeString(1, url);
            if (value.length > 0) { // bytes without presence: empty is not written
                out.writeByteArray(2, value);
            }
        });
    }

    /** A well-known type whose JSON is not an object of its fields: inside an Any it is under "value". */
    private static boolean special(String name) {
        return name.equals("google.protobuf.Duration") || name.equals("google.protobuf.Struct") || name.equals("google.protobuf.Any")
                || name.equals("google.protobuf.Value") || name.equals("google.protobuf.ListValue") || wrapper(name);
    }

    /** One of protobuf's wrappers ({@code UInt32Value}, {@code BoolValue}...), whose JSON is its value alone. */
    private static boolean wrapper(String name) {
        return name.startsWith("google.protobuf.") && name.endsWith("Value") && !name.equals("google.protobuf.Value")
                && !name.equals("google.protobuf.ListValue");
    }

    private static byte[] duration(Object node, String path) throws JsonError {
        var m = node instanceof String s ? DURATION.matcher(s.strip()) : null;
        if (m == null || !m.matches()) {
            throw new JsonError("Failed to parse duration: " + show(node) + " (a number of seconds ending in 's', such as \"1.5s\")", path);
        }
        long seconds;
        try {
            seconds = Long.parseLong(m.group(2));
        } catch (NumberFormatException e) {
            seconds = Long.MAX_VALUE;
        }
        int nanos = m.group(3) == null ? 0 : Integer.parseInt((m.group(3) + "00000000").substring(0, 9));
        if (seconds > MAX_DURATION_SECONDS) {
            throw new JsonError("Duration value is out of range: " + show(node), path);
        }
        long s = m.group(1) != null ? -seconds : seconds;
        int n = m.group(1) != null ? -nanos : nanos;
        return write(out -> {
            if (s != 0) {
                out.writeInt64(1, s);
            }
            if (n != 0) {
                out.writeInt32(2, n);
            }
        });
    }

    private static byte[] struct(Object node, String path) throws JsonError {
        if (!(node instanceof Map<?, ?> map)) {
            throw new JsonError("Expect a JSON object for google.protobuf.Struct but got: " + show(node), path);
        }
        return write(out -> {
            for (var e : map.entrySet()) {
                String key = String.valueOf(e.getKey());
                byte[] value = value(e.getValue(), path + "[" + key + "]");
                out.writeByteArray(1, write(entry -> {
                    entry.writeString(1, key);
                    entry.writeByteArray(2, value);
                }));
            }
        });
    }

    private static byte[] value(Object node, String path) throws JsonError {
        return write(out -> {
            if (node == null) {
                out.writeEnum(1, 0);
            } else if (node instanceof Number n) {
                out.writeDouble(2, n.doubleValue());
            } else if (node instanceof String s) {
                out.writeString(3, s);
            } else if (node instanceof Boolean b) {
                out.writeBool(4, b);
            } else if (node instanceof Map) {
                out.writeByteArray(5, struct(node, path));
            } else if (node instanceof List) {
                out.writeByteArray(6, listValue(node, path));
            } else {
                out.writeString(3, String.valueOf(node));
            }
        });
    }

    private static byte[] listValue(Object node, String path) throws JsonError {
        if (!(node instanceof List<?> list)) {
            throw new JsonError("Expect a JSON array for google.protobuf.ListValue but got: " + show(node), path);
        }
        return write(out -> {
            for (int i = 0; i < list.size(); i++) {
                out.writeByteArray(1, value(list.get(i), path + "[" + i + "]"));
            }
        });
    }

    // ----- helpers -----

    private interface Writer {
        void to(CodedOutputStream out) throws JsonError, IOException;
    }

    private static byte[] write(Writer writer) throws JsonError {
        var bytes = new ByteArrayOutputStream();
        var out = CodedOutputStream.newInstance(bytes);
        try {
            writer.to(out);
            out.flush();
        } catch (IOException e) {
            throw new IllegalStateException("writing to memory", e);
        }
        return bytes.toByteArray();
    }

    private static String join(String path, String name) {
        return path.isEmpty() ? name : path + "." + name;
    }

    private static String show(Object node) {
        if (node == null) {
            return "null";
        }
        if (node instanceof String s) {
            return '"' + s + '"';
        }
        String s = node instanceof Map ? "an object" : node instanceof List ? "an array" : node.toString();
        return s;
    }
}
