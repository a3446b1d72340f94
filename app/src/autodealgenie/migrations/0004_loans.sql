-- Loan applications on a deal, with the decision taken when they were made (financing.py).
-- The schedule is not stored: it follows from amount_financed, term_months and apr.
CREATE TABLE loan_applications (
    id              bigserial PRIMARY KEY,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    deal_id         bigint NOT NULL REFERENCES deals (id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('approved', 'declined')),
    reasons         jsonb NOT NULL DEFAULT '[]'::jsonb,
    price           numeric(12, 2) NOT NULL CHECK (price > 0),
    down_payment    numeric(12, 2) NOT NULL CHECK (down_payment >= 0 AND down_payment < price),
    amount_financed numeric(12, 2) NOT NULL CHECK (amount_financed = price - down_payment),
    term_months     integer NOT NULL CHECK (term_months BETWEEN 1 AND 120),
    apr             numeric(6, 3) NOT NULL CHECK (apr >= 0),
    monthly_payment numeric(12, 2) NOT NULL,
    total_interest  numeric(14, 2) NOT NULL,
    total_paid      numeric(14, 2) NOT NULL,
    vehicle_value   numeric(12, 2) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_loan_applications_user_id_created_at ON loan_applications (user_id, created_at DESC, id DESC);
CREATE INDEX ix_loan_applications_deal_id ON loan_applications (deal_id);
