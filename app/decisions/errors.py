from app.core.errors import NotFound, ValidationFailed


class DecisionNotFound(NotFound):
    code = "decision_not_found"


class OfferNotServed(ValidationFailed):
    code = "offer_not_in_decision"


class ModelNotFound(NotFound):
    code = "model_not_found"
