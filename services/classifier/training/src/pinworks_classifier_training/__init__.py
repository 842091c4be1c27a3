"""Training and evaluation of the classifier's intent model, kept out of the service image:
scikit-learn, scipy and matplotlib are needed here and never at inference."""
