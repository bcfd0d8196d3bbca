package dev.isthmus.api.names;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.api.nats.Subjects;
import org.junit.jupiter.api.Test;

class NamesTest {

    @Test
    void rejectsClusterNameThatIsNotADnsLabel() {
        var e = assertThrows(IllegalArgumentException.class, () -> ClusterName.of("US_East"));
        assertTrue(e.getMessage().contains("'US_East'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ClusterName.of("-edge"));
        assertThrows(IllegalArgumentException.class, () -> ClusterName.of(""));
    }

    @Test
    void parsesServiceNameAndRejectsMalformedOnes() {
        assertEquals(new ServiceName("shop", "product-catalog"), ServiceName.parse("shop/product-catalog"));
        assertEquals("product-catalog.shop.svc.cluster.local", ServiceName.parse("shop/product-catalog").clusterLocalHost());
        assertThrows(IllegalArgumentException.class, () -> ServiceName.parse("shop"));
        assertThrows(IllegalArgumentException.class, () -> ServiceName.parse("a/b/c"));
        assertThrows(IllegalArgumentException.class, () -> ServiceName.parse("/b"));
    }

    @Test
    void everySubjectStartsWithTheFederationPrefix() {
        var subjects = new Subjects(FederationName.of("acme"));
        var east = ClusterName.of("us-east");
        assertEquals("isthmus.acme.heartbeat.us-east", subjects.heartbeat(east));
        assertTrue(subjects.registry(east).startsWith("isthmus.acme."));
        assertTrue(subjects.policy().startsWith("isthmus.acme."));
        assertEquals("us-east.acme.isthmus", east.defaultTrustDomain(FederationName.of("acme")));
    }
}
