package dev.isthmus.proxy.config.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class YamlJsonTest {

    @Test
    void scalarsAreTypedByTheCoreSchema() throws Exception {
        assertEquals("{\"a\":true,\"b\":\"on\",\"c\":\"yes\",\"d\":12,\"e\":1.5,\"f\":null,\"g\":\"2024-01-01\",\"h\":\"12\",\"i\":\"NaN\"}",
                YamlJson.toJson("a: true\nb: on\nc: yes\nd: 12\ne: 1.5\nf: ~\ng: 2024-01-01\nh: \"12\"\ni: .nan\n"));
    }

    @Test
    void jsonAndFlowStyleReadTheSame() throws Exception {
        String json = "{\"l\":[{\"n\":\"x\\\"y\",\"p\":80}],\"m\":{}}";
        assertEquals(json, YamlJson.toJson(json));
        assertEquals(json, YamlJson.toJson("l:\n- { n: 'x\"y', p: 80 }\nm: {}\n"));
    }

    @Test
    void anchorsAndMergeKeysAreExpanded() throws Exception {
        assertEquals("{\"base\":{\"t\":\"1s\"},\"c\":{\"t\":\"1s\",\"n\":\"a\"}}", YamlJson.toJson("base: &b { t: 1s }\nc: { <<: *b, n: a }\n"));
    }

    @Test
    void mistakesSayWhere() {
        var e = assertThrows(YamlJson.YamlError.class, () -> YamlJson.toJson("a: 1\nb:\n  c: 2\n  c: 3\n"));
        assertTrue(e.getMessage().contains("duplicate key c") && e.getMessage().contains("line 4, column 3"), e.getMessage());
        e = assertThrows(YamlJson.YamlError.class, () -> YamlJson.toJson("a: [1, 2\nb: 3\n"));
        assertTrue(e.getMessage().matches(".*at line \\d+, column \\d+"), e.getMessage());
    }
}
