package dev.isthmus.sidecar;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.config.Settings;
import java.util.List;
import org.junit.jupiter.api.Test;

class UpstreamTest {

    static final String ID = "spiffe://us-east.acme.isthmus/ns/shop/sa/product-catalog";

    @Test
    void parsesEntries() {
        var all = Upstream.parseAll("127.0.0.1:20043=127.0.0.1:20052@" + ID + ", 127.0.0.1:20044=10.0.0.7:15006@" + ID.replace("product-catalog", "login"));
        assertEquals(2, all.size());
        assertEquals(20043, all.get(0).listen().getPort());
        assertEquals(20052, all.get(0).destination().getPort());
        assertEquals(ID, all.get(0).spiffeId());
        assertEquals(List.of(), Upstream.parseAll(" "));
    }

    @Test
    void badEntriesSayWhichAndWhat() {
        for (var bad : List.of(
                new String[] {"127.0.0.1:20043", "entry 1 ('127.0.0.1:20043') is not <listen host:port>"},
                new String[] {"127.0.0.1:20043=127.0.0.1:20052@http://x", "'http://x' is not spiffe://"},
                new String[] {"127.0.0.1=127.0.0.1:20052@" + ID, "listen '127.0.0.1' is not host:port"},
                new String[] {"127.0.0.1:1=127.0.0.1:99999@" + ID, "destination port 99999 is outside 1-65535"},
                new String[] {"127.0.0.1:1=127.0.0.1:2@" + ID + ",127.0.0.1:1=127.0.0.1:3@" + ID, "entry 2 ('127.0.0.1:1=127.0.0.1:3@"})) {
            var e = assertThrows(Settings.SettingsException.class, () -> Upstream.parseAll(bad[0]));
            assertTrue(e.getMessage().contains(bad[1]), e.getMessage());
        }
    }
}
