package dev.isthmus.controller.federation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.isthmus.api.registry.Endpoint;
import dev.isthmus.api.registry.RegistrySnapshot;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class WireTest {

    @Test
    void endpointsTravelAsArraysAndComeBackEqual() throws Exception {
        var e = new Endpoint("shop/a", "a-1", "eu-west", "10.0.0.1", 8080, "grpc", Map.of("version", "v2"), "eu-west", "zone-b", false, 3,
                "spiffe://eu-west.acme.isthmus/ns/shop/sa/a");
        var snapshot = RegistrySnapshot.of("eu-west", 7, List.of(e));
        ObjectMapper wire = Wire.mapper(new ObjectMapper());
        String text = wire.writeValueAsString(snapshot);
        assertTrue(text.contains("[\"shop/a\",\"a-1\",\"eu-west\",\"10.0.0.1\",8080,\"grpc\",{\"version\":\"v2\"}"), text);
        var back = wire.readValue(text, RegistrySnapshot.class);
        assertEquals(snapshot, back);
        assertTrue(back.consistent());
        assertTrue(new ObjectMapper().writeValueAsString(e).startsWith("{\"service\""), "the REST form stays an object");
    }
}
