package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.JsonText;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class YamlJsonTest {

    /** The tree YamlJson loads, written as JSON text to compare. */
    private static String toJson(String yaml) throws YamlJson.YamlError {
        var out = new StringBuilder();
        write(YamlJson.load(yaml), out);
        return out.toString();
    }

    private static void write(Object v, StringBuilder out) {
        if (v instanceof Map<?, ?> map) {
            out.append('{');
            String sep = "";
            for (var e : map.entrySet()) {
                out.append(sep).append(JsonText.quote(String.valueOf(e.getKey()))).append(':');
                write(e.getValue(), out);
                sep = ",";
            }
            out.append('}');
        } else if (v instanceof List<?> list) {
            out.append('[');
            for (int i = 0; i < list.size(); i++) {
                out.append(i == 0 ? "" : ",");
                write(list.get(i), out);
            }
            out.append(']');
        } else if (v instanceof String || v instanceof Double d && (d.isNaN() || d.isInfinite())) {
            out.append(JsonText.quote(v.toString()));
        } else {
            out.append(v);
        }
    }

    @Test
    void scalarsAreTypedByTheCoreSchema() throws Exception {
        assertEquals("{\"a\":true,\"b\":\"on\",\"c\":\"yes\",\"d\":12,\"e\":1.5,\"f\":null,\"g\":\"2024-01-01\",\"h\":\"12\",\"i\":\"NaN\"}",
                toJson("a: true\nb: on\nc: yes\nd: 12\ne: 1.5\nf: ~\ng: 2024-01-01\nh: \"12\"\ni: .nan\n"));
    }

    @Test
    void jsonAndFlowStyleReadTheSame() throws Exception {
        String json = "{\"l\":[{\"n\":\"x\\\"y\",\"p\":80}],\"m\":{}}";
        assertEquals(json, toJson(json));
        assertEquals(json, toJson("l:\n- { n: 'x\"y', p: 80 }\nm: {}\n"));
    }

    @Test
    void anchorsAndMergeKeysAreExpanded() throws Exception {
        assertEquals("{\"base\":{\"t\":\"1s\"},\"c\":{\"t\":\"1s\",\"n\":\"a\"}}", toJson("base: &b { t: 1s }\nc: { <<: *b, n: a }\n"));
    }

    @Test
    void mistakesSayWhere() {
        var e = assertThrows(YamlJson.YamlError.class, () -> toJson("a: 1\nb:\n  c: 2\n  c: 3\n"));
        assertTrue(e.getMessage().contains("duplicate key c") && e.getMessage().contains("line 4, column 3"), e.getMessage());
        e = assertThrows(YamlJson.YamlError.class, () -> toJson("a: [1, 2\nb: 3\n"));
        assertTrue(e.getMessage().matches(".*at line \\d+, column \\d+"), e.getMessage());
    }
}
