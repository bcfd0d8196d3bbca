package dev.isthmus.api.policy;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A YAML stream read into a tree that remembers where every value is (line and column), so errors
 * can name the file, the line and the field. Several documents ({@code ---}) give several roots.
 */
public final class YamlTree {

    private YamlTree() {
    }

    /** One value: a map (ordered), a list, or a scalar (text as written, or null). */
    public record Node(Map<String, Node> map, List<Node> list, String scalar, boolean isNull, int line, int column, Map<String, Integer> keyLines) {

        public boolean isMap() {
            return map != null;
        }

        public boolean isList() {
            return list != null;
        }

        public boolean isScalar() {
            return map == null && list == null;
        }

        /** What it is, in words for an error message. */
        public String kind() {
            return isMap() ? "a map" : isList() ? "a list" : isNull ? "nothing (null)" : "'" + scalar + "'";
        }

        /** The line of a key of this map (the key's own line), or this node's. */
        public int lineOf(String key) {
            return keyLines != null && keyLines.containsKey(key) ? keyLines.get(key) : line;
        }
    }

    /** A document that is not YAML; {@code line} is where the parser stopped. */
    public static final class SyntaxError extends Exception {
        private final int line;

        SyntaxError(String message, int line) {
            super(message);
            this.line = line;
        }

        public int line() {
            return line;
        }
    }

    private static final YAMLFactory YAML = new YAMLFactory();

    /** Every document of {@code text}; an empty document is left out. */
    public static List<Node> parse(String text) throws SyntaxError {
        var out = new ArrayList<Node>();
        try (JsonParser p = YAML.createParser(text)) {
            JsonToken t;
            while ((t = p.nextToken()) != null) {
                Node n = read(p, t);
                if (!(n.isScalar() && n.isNull())) {
                    out.add(n);
                }
            }
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            int line = e.getLocation() == null ? 0 : e.getLocation().getLineNr();
            throw new SyntaxError("not valid YAML: " + e.getOriginalMessage(), line);
        } catch (IOException e) {
            throw new SyntaxError("cannot be read: " + e.getMessage(), 0);
        }
        return out;
    }

    private static Node read(JsonParser p, JsonToken t) throws IOException {
        int line = p.currentTokenLocation().getLineNr();
        int column = p.currentTokenLocation().getColumnNr();
        switch (t) {
            case START_OBJECT -> {
                var map = new LinkedHashMap<String, Node>();
                var keyLines = new LinkedHashMap<String, Integer>();
                JsonToken k;
                while ((k = p.nextToken()) == JsonToken.FIELD_NAME) {
                    String key = p.currentName();
                    int keyLine = p.currentTokenLocation().getLineNr();
                    Node value = read(p, p.nextToken());
                    if (map.containsKey(key)) {
                        throw new com.fasterxml.jackson.core.JsonParseException(p, "key '" + key + "' is given twice in one map");
                    }
                    map.put(key, value);
                    keyLines.put(key, keyLine);
                }
                return new Node(map, null, null, false, line, column, keyLines);
            }
            case START_ARRAY -> {
                var list = new ArrayList<Node>();
                JsonToken e;
                while ((e = p.nextToken()) != JsonToken.END_ARRAY) {
                    list.add(read(p, e));
                }
                return new Node(null, list, null, false, line, column, null);
            }
            case VALUE_NULL -> {
                return new Node(null, null, null, true, line, column, null);
            }
            default -> {
                return new Node(null, null, p.getText(), false, line, column, null);
            }
        }
    }
}
