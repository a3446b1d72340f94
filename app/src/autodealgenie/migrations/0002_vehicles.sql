CREATE TABLE vehicles (
    id             bigserial PRIMARY KEY,
    vin            text NOT NULL UNIQUE,
    make           text NOT NULL,
    model          text NOT NULL,
    trim           text NOT NULL,
    year           integer NOT NULL,
    body_type      text NOT NULL,
    price          numeric(12, 2) NOT NULL,
    fair_value     numeric(12, 2) NOT NULL,
    mileage        integer NOT NULL,
    exterior_color text NOT NULL,
    fuel_type      text NOT NULL,
    transmission   text NOT NULL,
    drivetrain     text NOT NULL,
    dealer_name    text NOT NULL,
    dealer_city    text NOT NULL,
    dealer_state   text NOT NULL,
    listed_at      timestamptz NOT NULL
);
CREATE INDEX ix_vehicles_make_model ON vehicles (lower(make), lower(model));
CREATE INDEX ix_vehicles_price ON vehicles (price);
CREATE INDEX ix_vehicles_body_type ON vehicles (body_type);
