package dev.isthmus.controller.registry;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StaticFileSourceTest {

    @TempDir
    Path dir;

    final StaticFileSource source = new StaticFileSource(null, null, null);

    Path write(String name, String text) throws Exception {
        return Files.writeString(dir.resolve(name), text);
    }

    @Test
    void readsYamlAndJson() throws Exception {
        var yaml = source.read(write("eps.yaml", """
                endpoints:
                  - service: shop/billing
                    instance: billing-vm-1
                    address: 10.0.0.12
                    port: 8443
                    labels: {version: v1}
                  - service: shop/billing
                    instance: billing-vm-2
                    address: 10.0.0.13
                    port: 8443
                    protocol: grpc
                """));
        assertEquals(2, yaml.size());
        assertEquals("grpc", yaml.get(1).protocol());
        var json = source.read(write("eps.json", "{\"endpoints\":[{\"service\":\"shop/a\",\"instance\":\"a-1\",\"address\":\"h\",\"port\":1}]}"));
        assertEquals("a-1", json.get(0).instance());
        assertTrue(source.read(write("empty.yaml", "endpoints:\n")).isEmpty());
    }

    @Test
    void errorsNameTheFileTheLineTheEntryAndTheField() throws Exception {
        var e = assertThrows(StaticFileSource.StaticFileException.class, () -> source.read(write("bad.yaml", """
                endpoints:
                  - service: shop/billing
                    instance: billing-vm-1
                    address: 10.0.0.12
                    port: 8443
                  - service: shop/billing
                    instance: billing-vm-2
                    address: 10.0.0.13
                    port: 99999
                """)));
        assertTrue(e.getMessage().contains("bad.yaml: line 6: endpoints[1]: field 'port' must be 1-65535"), e.getMessage());

        e = assertThrows(StaticFileSource.StaticFileException.class, () -> source.read(write("typo.yaml", """
                endpoints:
                  - service: shop/billing
                    instance: b-1
                    adress: 10.0.0.12
                    port: 8443
                """)));
        assertTrue(e.getMessage().contains("endpoints[0]") && e.getMessage().contains("adress"), e.getMessage());

        e = assertThrows(StaticFileSource.StaticFileException.class, () -> source.read(write("dup.yaml", """
                endpoints:
                  - {service: shop/a, instance: x, address: h, port: 1}
                  - {service: shop/a, instance: x, address: h, port: 2}
                """)));
        assertTrue(e.getMessage().contains("listed twice"), e.getMessage());

        e = assertThrows(StaticFileSource.StaticFileException.class, () -> source.read(write("other.yaml", "services: []\n")));
        assertTrue(e.getMessage().contains("unknown key 'services'"), e.getMessage());

        e = assertThrows(StaticFileSource.StaticFileException.class, () -> source.read(write("broken.yaml", "endpoints: [\n  {service: \n")));
        assertTrue(e.getMessage().contains("broken.yaml: line"), e.getMessage());
    }
}
