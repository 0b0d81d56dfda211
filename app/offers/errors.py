from app.core.errors import Conflict, NotFound, ValidationFailed


class OfferNotFound(NotFound):
    code = "offer_not_found"


class PlacementNotFound(NotFound):
    code = "placement_not_found"


class NameTaken(Conflict):
    code = "name_taken"


class OfferInUse(Conflict):
    code = "offer_in_use"


class InvalidOffer(ValidationFailed):
    code = "invalid_offer"
