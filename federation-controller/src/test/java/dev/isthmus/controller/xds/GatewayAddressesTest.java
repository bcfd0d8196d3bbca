package dev.isthmus.controller.xds;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.net.InetAddress;
import java.time.Duration;
import java.time.Instant;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/** Gateway addresses announced as DNS names become the IP addresses sidecars can dial, and follow DNS. */
class GatewayAddressesTest {

    static String await(Supplier<String> value, String expected) throws InterruptedException {
        Instant deadline = Instant.now().plus(Duration.ofSeconds(5));
        String now = value.get();
        while (!now.equals(expected) && Instant.now().isBefore(deadline)) {
            Thread.sleep(20);
            now = value.get();
        }
        return now;
    }

    @Test
    void aNameIsResolvedOffTheCallersThreadAndFollowedAsItsAddressChanges() throws Exception {
        var dns = new ConcurrentHashMap<String, InetAddress[]>(Map.of("gw.eu-west.example.net",
                new InetAddress[] {InetAddress.getByName("10.0.0.9"), InetAddress.getByName("10.0.0.7"), InetAddress.getByName("fd00::1")}));
        try (var gateways = new GatewayAddresses(Duration.ofMillis(100), host -> dns.getOrDefault(host, new InetAddress[0]))) {
            assertEquals("", gateways.resolve("gw.eu-west.example.net:15443"), "not resolved yet: no address, and no wait");
            assertEquals("10.0.0.7:15443", await(() -> gateways.resolve("gw.eu-west.example.net:15443"), "10.0.0.7:15443"),
                    "the first address in order, IPv4 first, the same in every controller");
            dns.put("gw.eu-west.example.net", new InetAddress[] {InetAddress.getByName("10.0.0.8")});
            assertEquals("10.0.0.8:15443", await(() -> gateways.resolve("gw.eu-west.example.net:15443"), "10.0.0.8:15443"));
            dns.remove("gw.eu-west.example.net");
            assertEquals("", await(() -> gateways.resolve("gw.eu-west.example.net:15443"), ""), "a name that stops resolving has no address");
        }
    }

    @Test
    void addressesAndNothingAreAsGiven() {
        try (var gateways = new GatewayAddresses(Duration.ofSeconds(30), host -> {
            throw new AssertionError("no lookup for " + host);
        })) {
            assertEquals("192.0.2.10:15443", gateways.resolve("192.0.2.10:15443"));
            assertEquals("fd00::2:15443", gateways.resolve("fd00::2:15443"));
            assertEquals("", gateways.resolve(""));
            assertEquals("", gateways.resolve(null));
        }
    }
}
