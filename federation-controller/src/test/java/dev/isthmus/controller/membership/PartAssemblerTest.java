package dev.isthmus.controller.membership;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class PartAssemblerTest {

    @Test
    void aBodySplitAndJoinedInAnyOrderIsTheSameBody() throws Exception {
        byte[] body = new byte[100_000];
        new Random(7).nextBytes(body);
        List<byte[]> pieces = PartAssembler.split(body, 30_000);
        assertEquals(4, pieces.size());
        var a = new PartAssembler();
        assertTrue(a.add("eu-west", "m1", "3/4", pieces.get(2), 0).isEmpty());
        assertTrue(a.add("eu-west", "m1", "1/4", pieces.get(0), 0).isEmpty());
        assertTrue(a.add("eu-west", "m1", "4/4", pieces.get(3), 0).isEmpty());
        assertArrayEquals(body, a.add("eu-west", "m1", "2/4", pieces.get(1), 0).orElseThrow());
        assertEquals(1, PartAssembler.split(new byte[10], 30_000).size());
    }

    @Test
    void badHeadersAreRefusedAndStalePartsExpire() throws Exception {
        var a = new PartAssembler();
        assertThrows(PartAssembler.BadPartException.class, () -> a.add("x", "m", "5/4", new byte[1], 0));
        assertThrows(PartAssembler.BadPartException.class, () -> a.add("x", "m", "1", new byte[1], 0));
        assertThrows(PartAssembler.BadPartException.class, () -> a.add("x", null, "1/2", new byte[1], 0));
        a.add("x", "m2", "1/2", new byte[1], 0);
        assertThrows(PartAssembler.BadPartException.class, () -> a.add("x", "m2", "1/3", new byte[1], 0));
        a.add("x", "m3", "1/2", new byte[1], 100);
        assertEquals(List.of("x/m3"), a.expire(1_000));
        assertTrue(a.add("x", "m3", "2/2", new byte[1], 2_000).isEmpty(), "the first part was dropped with the message");
    }

    @Test
    void gzipRoundTripsAndRefusesGarbage() {
        byte[] text = "registry ".repeat(10_000).getBytes();
        byte[] z = FederationBus.gzip(text);
        assertTrue(z.length < text.length / 10);
        assertArrayEquals(text, FederationBus.gunzip(z));
        assertThrows(IllegalArgumentException.class, () -> FederationBus.gunzip(new byte[] {1, 2, 3}));
    }
}
