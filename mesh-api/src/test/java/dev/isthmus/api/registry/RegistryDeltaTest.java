package dev.isthmus.api.registry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class RegistryDeltaTest {

    static Endpoint ep(String instance, int port) {
        return new Endpoint("shop/a", instance, "eu-west", "10.0.0.1", port, "http", Map.of(), "eu-west", "z", true, 1, "");
    }

    @Test
    void aDeltaAppliedToItsBaseGivesTheNewSnapshot() {
        var before = RegistrySnapshot.of("eu-west", 5, List.of(ep("a", 1), ep("b", 2), ep("c", 3)));
        var after = RegistrySnapshot.of("eu-west", 6, List.of(ep("a", 1), ep("b", 9), ep("d", 4)));
        var delta = RegistryDelta.between(before, after, 0);
        assertEquals(List.of("c"), delta.removed());
        assertEquals(2, delta.upserted().size());
        assertEquals(after, delta.applyTo(before).orElseThrow());
    }

    @Test
    void aDeltaRefusesAnotherBaseOrAWrongResult() {
        var before = RegistrySnapshot.of("eu-west", 5, List.of(ep("a", 1)));
        var after = RegistrySnapshot.of("eu-west", 6, List.of(ep("a", 2)));
        var delta = RegistryDelta.between(before, after, 0);
        assertTrue(delta.applyTo(RegistrySnapshot.of("eu-west", 4, List.of(ep("a", 1)))).isEmpty(), "other base generation");
        assertTrue(delta.applyTo(RegistrySnapshot.of("eu-west", 5, List.of(ep("a", 1), ep("x", 1)))).isEmpty(), "same generation, other content");
    }
}
