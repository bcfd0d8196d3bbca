package dev.isthmus.shop.productcatalog;

import dev.isthmus.shop.ShopService;
import dev.isthmus.shop.ShopService.Answer;
import java.util.List;
import java.util.Map;

/** The shop's catalogue: {@code GET /products} lists what is for sale. */
public final class ProductCatalogApp {
    public static void main(String[] args) throws Exception {
        var products = List.of(
                Map.of("sku", "tee-001", "name", "Isthmus tee", "price", 19.0),
                Map.of("sku", "mug-002", "name", "Gateway mug", "price", 9.5));
        ShopService.create("product-catalog", System.getenv())
                .route("/products", req -> Answer.ok(Map.of("products", products)))
                .start();
    }
}
