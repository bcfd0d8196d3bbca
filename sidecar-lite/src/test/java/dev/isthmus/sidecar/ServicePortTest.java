package dev.isthmus.sidecar;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.config.Settings;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ServicePortTest {

    private static final Set<InetSocketAddress> FIRST = Set.of(new InetSocketAddress("127.0.0.1", 15006));

    @Test
    void parsesEntries() {
        var all = ServicePort.parseAll("9090/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15016; 8443/http2 inbound=127.0.0.1:15017 app=127.0.0.1:8443",
                80, FIRST);
        assertEquals(2, all.size());
        assertEquals(new ServicePort(9090, "grpc", new InetSocketAddress("127.0.0.1", 8090), new InetSocketAddress("127.0.0.1", 15016)), all.get(0));
        assertEquals("inbound|8443", all.get(1).listenerName());
        assertEquals(List.of(), ServicePort.parseAll("", 80, FIRST));
    }

    @Test
    void badEntriesSayWhichAndWhat() {
        for (var bad : List.of(
                new String[] {"9090 app=127.0.0.1:8090 inbound=127.0.0.1:15016", "entry 1 ('9090 app=127.0.0.1:8090 inbound=127.0.0.1:15016') is not"},
                new String[] {"x/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15016", "service port 'x' is not a number"},
                new String[] {"70000/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15016", "service port 70000 is outside 1-65535"},
                new String[] {"9090/tcp app=127.0.0.1:8090 inbound=127.0.0.1:15016", "protocol 'tcp' is not one of [grpc, http, http2]"},
                new String[] {"9090/grpc app=127.0.0.1:8090 app=127.0.0.1:15016", "'app=127.0.0.1:15016' is not app=<host:port> or inbound="},
                new String[] {"9090/grpc app=127.0.0.1 inbound=127.0.0.1:15016", "app '127.0.0.1' is not host:port"},
                new String[] {"80/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15016", "service port 80 is already declared"},
                new String[] {"9090/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15006", "inbound address 127.0.0.1:15006 is used by another listener"},
                new String[] {"9090/grpc app=127.0.0.1:8090 inbound=127.0.0.1:15016;9091/grpc app=127.0.0.1:8091 inbound=127.0.0.1:15016",
                        "entry 2"})) {
            var e = assertThrows(Settings.SettingsException.class, () -> ServicePort.parseAll(bad[0], 80, FIRST), bad[0]);
            assertTrue(e.getMessage().contains(bad[1]), e.getMessage());
        }
    }
}
