package dev.isthmus.shop.productcatalog;

import dev.isthmus.shop.ShopGrpc;
import dev.isthmus.shop.ShopService;
import dev.isthmus.shop.ShopService.Answer;
import java.util.List;
import java.util.Map;

/**
 * The shop's catalogue: {@code GET /products} (HTTP/1.1, service port 80) and the gRPC method
 * {@value ShopGrpc#LIST_PRODUCTS} on {@code SHOP_GRPC_PORT} (service port
 * {@value ShopGrpc#CATALOG_SERVICE_PORT}) list what is for sale.
 */
public final class ProductCatalogApp {
    public static void main(String[] args) throws Exception {
        var products = List.of(
                Map.of("sku", "tee-001", "name", "Isthmus tee", "price", 19.0),
                Map.of("sku", "mug-002", "name", "Gateway mug", "price", 9.5));
        var shop = ShopService.create("product-catalog", System.getenv())
                .route("/products", req -> Answer.ok(Map.of("products", products)));
        if (System.getenv("SHOP_GRPC_PORT") != null) {
            shop.grpc(ShopGrpc.LIST_PRODUCTS, request -> Answer.ok(Map.of("products", products)));
        }
        shop.start();
    }
}
